"""Installing the host where browsers look for it, and checking that they can.

* ``locations`` — every place each browser reads native messaging host
  manifests on Linux, macOS and Windows (files, and registry keys on Windows);
* ``manifests`` — the one source of the host manifests and of the enterprise
  policy templates in ``manifests/``;
* ``system`` — the filesystem and registry the installer writes through, with a
  fake root (and a capturing registry) for tests of other platforms;
* ``cli`` / ``cli_uninstall`` / ``doctor`` — the commands.
"""
