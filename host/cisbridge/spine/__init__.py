"""The NHS Spine's protocols as cisbridge speaks them (SPINE.md).

``gpobject`` is the GAS message codec, ``cms`` the CMS SignedData a card login
sends, ``server`` the checks an EHR back end makes on a ticket.  Nothing here
talks to a card or to the native messaging wire.
"""
