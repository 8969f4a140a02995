/*
 * test_runstate.c - RUN/esbankd.state (common/runstate.c): the exact text
 * esbankd writes, read back by the client's reader; a file that is absent
 * or does not parse reads as no children; the largest state fits the file's limit.
 */
#include "runstate.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static runstate_t t_two_children(void)
{
	runstate_t rs = {.esbankd_pid = 4242, .state = "running", .updated_ms = 1767225600123,
	                 .count = 2};
	rs.children[0] = (runstate_child_t){"logger", 4243, true, 0, 1767225600100};
	rs.children[1] = (runstate_child_t){"bus", 4250, false, 3, 1767225600110};
	return rs;
}

static void t_write(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

Test(runstate, format_is_the_documented_text)
{
	runstate_t rs = t_two_children();
	char buf[RUNSTATE_BYTES_MAX];
	size_t len = 0;
	cr_assert_eq(runstate_format(&rs, buf, &len), 0);
	const char *want =
	    "{\"esbankd_pid\": 4242, \"state\": \"running\", \"updated_ms\": 1767225600123, "
	    "\"children\": [\n"
	    "  {\"name\": \"logger\", \"pid\": 4243, \"running\": true, \"restarts\": 0, "
	    "\"up_since_ms\": 1767225600100},\n"
	    "  {\"name\": \"bus\", \"pid\": 4250, \"running\": false, \"restarts\": 3, "
	    "\"up_since_ms\": 1767225600110}\n]}\n";
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(buf, want, len), 0, "got %.*s", (int)len, buf);
}

Test(runstate, what_is_written_is_read_back)
{
	runstate_t rs = t_two_children(), got;
	char buf[RUNSTATE_BYTES_MAX], path[] = "/tmp/test_runstate.XXXXXX";
	size_t len = 0;
	cr_assert_eq(runstate_format(&rs, buf, &len), 0);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	t_write(path, buf, len);
	runstate_read(path, &got);
	unlink(path);
	cr_assert_eq(memcmp(&rs, &got, sizeof(rs)), 0);
	cr_assert_eq(runstate_find(&got, "bus"), &got.children[1]);
	cr_assert_null(runstate_find(&got, "mailer"));
}

Test(runstate, absent_or_garbage_reads_as_no_children)
{
	runstate_t got;
	char path[] = "/tmp/test_runstate.XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	t_write(path, "{\"children\": [", 14);
	got.count = 5;
	runstate_read(path, &got);
	cr_assert_eq(got.count, 0);
	unlink(path);
	got.count = 5;
	runstate_read(path, &got);
	cr_assert_eq(got.count, 0);
}

Test(runstate, unknown_members_ignored_and_children_beyond_the_max_not_read)
{
	runstate_t got;
	char path[] = "/tmp/test_runstate.XXXXXX", text[2048];
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	int n = snprintf(text, sizeof(text), "{\"new\": 1, \"children\": [");
	for (int i = 0; i < RUNSTATE_CHILDREN_MAX + 2; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "%s{\"name\": \"a-name-longer-than-fifteen\", \"pid\": %d, \"x\": []}",
		              i ? "," : "", i);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "]}");
	t_write(path, text, (size_t)n);
	runstate_read(path, &got);
	unlink(path);
	cr_assert_eq(got.count, RUNSTATE_CHILDREN_MAX);
	cr_assert_str_eq(got.children[0].name, "a-name-longer-t");
	cr_assert_eq(got.children[7].pid, 7);
}

Test(runstate, the_largest_state_fits)
{
	runstate_t rs = {.esbankd_pid = INT64_MAX, .updated_ms = INT64_MAX,
	                 .count = RUNSTATE_CHILDREN_MAX};
	memset(rs.state, 'x', RUNSTATE_STATE_MAX);
	for (int i = 0; i < rs.count; i++)
		rs.children[i] = (runstate_child_t){.pid = INT64_MAX, .restarts = INT64_MAX,
		                                    .up_since_ms = INT64_MAX};
	for (int i = 0; i < rs.count; i++)
		memset(rs.children[i].name, 'n', RUNSTATE_NAME_MAX);
	char buf[RUNSTATE_BYTES_MAX];
	size_t len = 0;
	cr_assert_eq(runstate_format(&rs, buf, &len), 0);
	cr_assert_lt(len, RUNSTATE_BYTES_MAX);
	cr_assert_eq(buf[len - 1], '\n');
}
