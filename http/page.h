/*
 * page.h - the verification page: the small HTML pages a person sees after
 * opening the mailed link (GET /api/verify with Accept: text/html). No
 * script: a form whose button POSTs the verification, and one page of
 * words for each outcome. Pure: it renders text, the routes send it.
 */
#ifndef ESBANK_HTTP_PAGE_H
#define ESBANK_HTTP_PAGE_H

#include <stddef.h>

#define PAGE_BYTES_MAX 4096

/*
 * The form for account and code (escaped into hidden fields), posting
 * application/x-www-form-urlencoded to "verify" (the same path, so a
 * gateway behind a prefix still works). Returns the length written into
 * out (PAGE_BYTES_MAX bytes), or -ENOSPC.
 */
int page_verify_form(char *out, const char *account, const char *code);

/*
 * The page that answers the button: code is NULL for success, else the
 * protocol error code, told in words. Returns the length, or -ENOSPC.
 */
int page_verify_result(char *out, const char *code);

#endif
