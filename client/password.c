/*
 * password.c - password input without echo (see password.h).
 *
 * The terminal is put back as it was before returning, also when a signal
 * (Ctrl-C) arrives while echo is off: the handlers only note the signal, the
 * read is interrupted, the terminal restored, and the signal raised again
 * with its default action.
 */
#include "password.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const int password_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define PASSWORD_SIGNALS (sizeof(password_signals) / sizeof(password_signals[0]))

#define PASSWORD_STR_(x) #x
#define PASSWORD_STR(x) PASSWORD_STR_(x)

static volatile sig_atomic_t password_caught;

static void password_on_signal(int sig)
{
	password_caught = sig;
}

/*
 * Reads one line from fd into buf, without its "\n" or "\r\n". Returns 0,
 * -ENODATA at end of input before any byte, -EMSGSIZE when the line is
 * longer than PASSWORD_BYTES_MAX, -EINTR on a signal, or -errno.
 */
static int password_line(int fd, char buf[PASSWORD_BYTES_MAX + 1], size_t *len)
{
	size_t n = 0;
	bool too_long = false;
	char c;

	for (;;) {
		ssize_t got = read(fd, &c, 1);
		if (got < 0)
			return -errno;
		if (got == 0 && n == 0 && !too_long)
			return -ENODATA;
		if (got == 0 || c == '\n')
			break;
		if (n < PASSWORD_BYTES_MAX)
			buf[n++] = c;
		else
			too_long = true;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return too_long ? -EMSGSIZE : 0;
}

static int password_ask(int tty, const char *prompt, char buf[PASSWORD_BYTES_MAX + 1],
			size_t *len)
{
	if (write(tty, prompt, strlen(prompt)) < 0)
		return -errno;
	int rc = password_line(tty, buf, len);
	if (write(tty, "\n", 1) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Asks once or twice; the caller has turned echo off. */
static int password_prompt(int tty, bool confirm, char buf[PASSWORD_BYTES_MAX + 1],
			   size_t *len)
{
	char again[PASSWORD_BYTES_MAX + 1];
	size_t again_len;

	int rc = password_ask(tty, "Password: ", buf, len);
	if (rc < 0 || !confirm)
		return rc;
	rc = password_ask(tty, "Repeat password: ", again, &again_len);
	if (rc == 0 && (again_len != *len || memcmp(again, buf, again_len) != 0))
		rc = -EKEYREJECTED;
	sodium_memzero(again, sizeof(again));
	return rc;
}

static int password_from_tty(bool confirm, char buf[PASSWORD_BYTES_MAX + 1], size_t *len)
{
	struct sigaction sa = { .sa_handler = password_on_signal }, old_sa[PASSWORD_SIGNALS];
	struct termios old_tio, tio;

	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty < 0)
		return -ENOTTY;
	if (tcgetattr(tty, &old_tio) < 0) {
		close(tty);
		return -ENOTTY;
	}
	sigemptyset(&sa.sa_mask);
	password_caught = 0;
	for (size_t i = 0; i < PASSWORD_SIGNALS; i++)
		sigaction(password_signals[i], &sa, &old_sa[i]);
	tio = old_tio;
	tio.c_lflag &= ~(tcflag_t)ECHO;
	int rc = tcsetattr(tty, TCSAFLUSH, &tio) < 0 ? -errno : 0;
	if (rc == 0)
		rc = password_prompt(tty, confirm, buf, len);
	tcsetattr(tty, TCSAFLUSH, &old_tio);
	close(tty);
	for (size_t i = 0; i < PASSWORD_SIGNALS; i++)
		sigaction(password_signals[i], &old_sa[i], NULL);
	if (password_caught)
		raise(password_caught);
	return rc;
}

static void password_explain(int rc)
{
	const char *why;

	switch (rc) {
	case -ENOTTY: why = "no terminal to ask for the password on; use --password-stdin"; break;
	case -ENODATA: why = "no password given (empty input)"; break;
	case -EMSGSIZE:
		why = "the password is longer than " PASSWORD_STR(PASSWORD_BYTES_MAX) " bytes";
		break;
	case -EKEYREJECTED: why = "the two passwords do not match"; break;
	case -EINTR: why = "interrupted"; break;
	default: why = strerror(-rc); break;
	}
	fprintf(stderr, "esbank: cannot read the password: %s\n", why);
}

int password_read(bool from_stdin, bool confirm, char buf[PASSWORD_BYTES_MAX + 1], size_t *len)
{
	int rc;

	if (from_stdin)
		rc = password_line(STDIN_FILENO, buf, len);
	else
		rc = password_from_tty(confirm, buf, len);
	if (rc < 0) {
		sodium_memzero(buf, PASSWORD_BYTES_MAX + 1);
		password_explain(rc);
	}
	return rc;
}
