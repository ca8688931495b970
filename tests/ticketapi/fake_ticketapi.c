/*
 * A stand-in for the NHS Identity Agent's TicketApiDll.dll: the same nine
 * exports with the same C signatures (SPINE.md §1, ticket_api.h), answering
 * from a script so tests can drive every path of cisbridge's binding.
 *
 * Built by the tests with gcc into a shared library.  Define UNDECORATED to
 * export the names without the leading underscore (TcktApi_Initialize ...).
 *
 * Environment:
 *   FAKE_TICKETAPI_SCRIPT  file of scripted answers, one per line:
 *       <function> [code=0x...] [ticket=TEXT | ticketlen=N] [used=reports|silent]
 *                  [nul=yes|no] [lasterror=0x...] [sleep=MS]
 *     <function> is Initialize, getTicket, getTicketNoAuth, getNewTicket or
 *     destroyTicket.  Each call takes the first unused line for its function.
 *     code!=0: the call returns it (Initialize: returns NULL and getLastError
 *     then reports lasterror if given, else code).  code=0 with a ticket: the ticket is
 *     written if it fits (with its NUL), else BUFFER_TOO_SMALL is returned, the
 *     line stays for the retry, and *used gets the size needed when
 *     used=reports (default).  nul=no: on success *used excludes the NUL.
 *     Initialize with no line succeeds; a ticket call with no line returns
 *     TCK_API_ERR_INTERNAL and logs UNSCRIPTED.
 *   FAKE_TICKETAPI_LOG     file each call appends one line to, e.g.
 *       "Initialize -> 1515870772", "getTicket size=512 -> 0x80100004",
 *       "Finalize 1515870772"; "OVERLAP" when two calls run at once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
#include <limits.h>

typedef long TCK_API_INSTANCE;
typedef uint32_t DWORD;

#ifdef UNDECORATED
#define EXPORT(name) TcktApi_##name
#else
#define EXPORT(name) _TcktApi_##name
#endif
#define API __attribute__((visibility("default")))

#define SUCCESS 0x00000000u
#define ERR_INTERNAL 0x80100001u
#define ERR_INVALID_PARAMETER 0x80100003u
#define ERR_BUFFER_TOO_SMALL 0x80100004u
#define ERR_INVALID_INSTANCE_HANDLE 0x80100005u
#define ERR_NOT_INITIALIZED 0x80100002u

/* On LP64 a handle wider than 32 bits: a binding that passes int, not long, loses it. */
#if LONG_MAX > 0x7FFFFFFFL
#define HANDLE 0x7A5A5A5A1234L
#else
#define HANDLE 0x5A5A1234L
#endif
#define MAX_LINES 64
#define MAX_TICKET (256 * 1024)

struct line {
    char func[32];
    DWORD code;
    DWORD lasterror;
    int has_lasterror;
    char *ticket;
    int used_reports;
    int nul;
    int sleep_ms;
    int done;
};

static struct line script[MAX_LINES];
static int nlines = -1;
static DWORD last_error;
static TCK_API_INSTANCE live;
static volatile int in_call;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logf_(const char *fmt, ...)
{
    const char *path = getenv("FAKE_TICKETAPI_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static void enter(void)
{
    if (__sync_fetch_and_add(&in_call, 1) != 0) logf_("OVERLAP");
}

static void leave(void) { __sync_fetch_and_sub(&in_call, 1); }

static void load_script(void)
{
    if (nlines >= 0) return;
    nlines = 0;
    const char *path = getenv("FAKE_TICKETAPI_SCRIPT");
    if (!path) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    static char text[MAX_TICKET + 256];
    while (nlines < MAX_LINES && fgets(text, sizeof text, f)) {
        struct line *l = &script[nlines];
        memset(l, 0, sizeof *l);
        l->used_reports = 1;
        l->nul = 1;
        char *save = NULL;
        char *tok = strtok_r(text, " \t\r\n", &save);
        if (!tok || tok[0] == '#') continue;
        snprintf(l->func, sizeof l->func, "%s", tok);
        while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
            char *eq = strchr(tok, '=');
            if (!eq) continue;
            *eq = '\0';
            const char *v = eq + 1;
            if (!strcmp(tok, "code")) l->code = (DWORD)strtoul(v, NULL, 0);
            else if (!strcmp(tok, "lasterror")) {
                l->lasterror = (DWORD)strtoul(v, NULL, 0);
                l->has_lasterror = 1;
            }
            else if (!strcmp(tok, "ticket")) l->ticket = strdup(v);
            else if (!strcmp(tok, "ticketlen")) {
                size_t n = strtoul(v, NULL, 0);
                if (n > MAX_TICKET) n = MAX_TICKET;
                l->ticket = malloc(n + 1);
                /* an OpenSSO-looking ticket with every awkward character */
                static const char alphabet[] =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=@#*";
                for (size_t i = 0; i < n; i++) l->ticket[i] = alphabet[(i * 7 + 3) % (sizeof alphabet - 1)];
                l->ticket[n] = '\0';
            }
            else if (!strcmp(tok, "used")) l->used_reports = strcmp(v, "silent") != 0;
            else if (!strcmp(tok, "nul")) l->nul = strcmp(v, "no") != 0;
            else if (!strcmp(tok, "sleep")) l->sleep_ms = atoi(v);
        }
        nlines++;
    }
    fclose(f);
}

static struct line *next_line(const char *func)
{
    load_script();
    for (int i = 0; i < nlines; i++)
        if (!script[i].done && !strcmp(script[i].func, func)) return &script[i];
    return NULL;
}

API TCK_API_INSTANCE EXPORT(Initialize)(void)
{
    enter();
    struct line *l = next_line("Initialize");
    TCK_API_INSTANCE result = HANDLE;
    if (l) {
        l->done = 1;
        if (l->code) {
            last_error = l->has_lasterror ? l->lasterror : l->code;
            result = 0;
        }
    }
    if (result) live = result;
    logf_("Initialize -> %ld", result);
    leave();
    return result;
}

API DWORD EXPORT(GetGAVersion)(TCK_API_INSTANCE instance, int component)
{
    enter();
    DWORD v = 0;
    if (instance != live || !live) last_error = ERR_INVALID_INSTANCE_HANDLE;
    else if (component == 1) v = 0x00020001;
    else if (component == 2) v = 0x00030007;
    else last_error = ERR_INVALID_PARAMETER;
    logf_("GetGAVersion %d -> 0x%08X", component, v);
    leave();
    return v;
}

static int ticket_call(const char *func, TCK_API_INSTANCE instance, char *buf, unsigned size,
                       unsigned *used)
{
    enter();
    DWORD rc;
    struct line *l = NULL;
    if (!live) rc = ERR_NOT_INITIALIZED;
    else if (instance != live) rc = ERR_INVALID_INSTANCE_HANDLE;
    else if (!buf || !used) rc = ERR_INVALID_PARAMETER;
    else if (!(l = next_line(func))) {
        logf_("UNSCRIPTED %s", func);
        rc = ERR_INTERNAL;
    } else {
        if (l->sleep_ms) usleep((useconds_t)l->sleep_ms * 1000);
        if (l->code) {
            rc = l->code;
            l->done = 1;
        } else {
            const char *t = l->ticket ? l->ticket : "";
            size_t n = strlen(t);
            if (n + 1 > size) {
                rc = ERR_BUFFER_TOO_SMALL;
                if (l->used_reports) *used = (unsigned)(n + 1);
            } else {
                memcpy(buf, t, n + 1);
                *used = (unsigned)(l->nul ? n + 1 : n);
                rc = SUCCESS;
                l->done = 1;
            }
        }
    }
    last_error = rc;
    logf_("%s size=%u -> 0x%08X", func, size, rc);
    leave();
    return (int)rc;
}

API int EXPORT(getTicket)(TCK_API_INSTANCE i, char *b, unsigned s, unsigned *u)
{
    return ticket_call("getTicket", i, b, s, u);
}

API int EXPORT(getTicketNoAuth)(TCK_API_INSTANCE i, char *b, unsigned s, unsigned *u)
{
    return ticket_call("getTicketNoAuth", i, b, s, u);
}

API int EXPORT(getNewTicket)(TCK_API_INSTANCE i, char *b, unsigned s, unsigned *u)
{
    return ticket_call("getNewTicket", i, b, s, u);
}

API int EXPORT(destroyTicket)(TCK_API_INSTANCE instance)
{
    enter();
    DWORD rc = SUCCESS;
    struct line *l = next_line("destroyTicket");
    if (instance != live || !live) rc = ERR_INVALID_INSTANCE_HANDLE;
    else if (l) { rc = l->code; l->done = 1; }
    last_error = rc;
    logf_("destroyTicket -> 0x%08X", rc);
    leave();
    return (int)rc;
}

API DWORD EXPORT(getLastError)(TCK_API_INSTANCE instance)
{
    (void)instance;
    enter();
    logf_("getLastError -> 0x%08X", last_error);
    leave();
    return last_error;
}

static const char *describe(DWORD err)
{
    switch (err) {
    case 0x80100004: return "The buffer is too small.";
    case 0x80100007: return "Communication with the Identity Agent failed.";
    case 0x80100009: return "No ticket is available.";
    case 0x80200002: return "No card reader is available.";
    case 0x80200003: return "The smartcard is not valid.";
    case 0x80200004: return "The PIN is blocked.";
    case 0x80200006: return "No certificate was found on the card.";
    case 0x80400001: return "The user aborted the authentication.";
    case 0x80400002: return "Authentication failed.";
    case 0x80400005: return "The authentication server is not available.";
    case 0x80400007: return "The authentication is not valid.";
    case 0x80800002: return "The Identity Agent is not installed.";
    case 0x80800003: return "No authentication server was found.";
    default: return NULL;
    }
}

API int EXPORT(getErrorDescription)(TCK_API_INSTANCE instance, DWORD err, char *buf,
                                    unsigned size, unsigned *used)
{
    (void)instance; /* works without an instance, so Initialize failures can be described */
    enter();
    const char *d = describe(err);
    int rc;
    if (!d) rc = (int)ERR_INVALID_PARAMETER;
    else if (strlen(d) + 1 > size) rc = (int)ERR_BUFFER_TOO_SMALL;
    else {
        memcpy(buf, d, strlen(d) + 1);
        if (used) *used = (unsigned)strlen(d) + 1;
        rc = 0;
    }
    logf_("getErrorDescription 0x%08X -> 0x%08X", err, (DWORD)rc);
    leave();
    return rc;
}

API void EXPORT(Finalize)(TCK_API_INSTANCE instance)
{
    enter();
    if (instance != live || !live) logf_("Finalize BADINSTANCE %ld", instance);
    else logf_("Finalize %ld", instance);
    live = 0;
    leave();
}
