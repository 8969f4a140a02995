/*
 * page.c - the verification pages (see page.h).
 */
#include "page.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PAGE_FIELD_MAX 1024 /* an escaped hidden field's value */

static const char PAGE_HEAD[] =
	"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	"<meta name=\"viewport\" content=\"width=device-width\">"
	"<title>esbank: verify your account</title>"
	"<style>body{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em}"
	"button{font-size:1.2em;padding:.5em 1.5em}</style></head>\n<body>\n";

static const char PAGE_TAIL[] = "</body></html>\n";

/* HTML-escapes s into out (size bytes). Returns 0 or -ENOSPC. */
static int page_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;
	for (; *s; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: break;
		}
		size_t n = rep ? strlen(rep) : 1;
		if (o + n >= size)
			return -ENOSPC;
		memcpy(out + o, rep ? rep : s, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

static int page_finish(int n)
{
	return n < 0 || n >= PAGE_BYTES_MAX ? -ENOSPC : n;
}

int page_verify_form(char *out, const char *account, const char *code)
{
	char a[PAGE_FIELD_MAX], c[PAGE_FIELD_MAX];
	if (page_escape(account, a, sizeof(a)) < 0 || page_escape(code, c, sizeof(c)) < 0)
		return -ENOSPC;
	int n = snprintf(out, PAGE_BYTES_MAX,
	                 "%s<h1>Verify your esbank account</h1>\n"
	                 "<p>Account <strong>%s</strong>. Press the button to confirm "
	                 "that this email address is yours.</p>\n"
	                 "<form method=\"post\" action=\"verify\">"
	                 "<input type=\"hidden\" name=\"account\" value=\"%s\">"
	                 "<input type=\"hidden\" name=\"code\" value=\"%s\">"
	                 "<button type=\"submit\" id=\"verify\">Verify my account</button>"
	                 "</form>\n%s",
	                 PAGE_HEAD, a, a, c, PAGE_TAIL);
	return page_finish(n);
}

/* The headline and the sentence for an outcome. */
static void page_words(const char *code, const char **head, const char **text)
{
	if (!code) {
		*head = "Your account is verified";
		*text = "Welcome to esbank! You can now log in.";
	} else if (strcmp(code, "already_verified") == 0) {
		*head = "Your account is already verified";
		*text = "There is nothing more to do: you can log in.";
	} else if (strcmp(code, "wrong_code") == 0) {
		*head = "This link is no longer valid";
		*text = "The code in it is not the account's current one. "
		        "Use the link in the newest mail from esbank.";
	} else if (strcmp(code, "not_found") == 0 || strcmp(code, "bad_request") == 0) {
		*head = "This link is not complete";
		*text = "It names no account we know. Copy the whole link from the mail.";
	} else {
		*head = "Sorry, that did not work";
		*text = "The bank could not verify the account just now. "
		        "Please try again in a few minutes.";
	}
}

int page_verify_result(char *out, const char *code)
{
	const char *head, *text;
	page_words(code, &head, &text);
	int n = snprintf(out, PAGE_BYTES_MAX, "%s<h1>%s</h1>\n<p>%s</p>\n%s", PAGE_HEAD, head,
	                 text, PAGE_TAIL);
	return page_finish(n);
}
