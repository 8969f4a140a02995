/*
 * jobs.c - the off-loop job runner: a blocking call (nats.c waits for a
 * reply) run on libuv's thread pool, its result handed back on the loop.
 * A leaf: the files that start jobs call it, it calls none of them. Also
 * the growing list of seqs (repl_seqs_t) that jobs hand back.
 */
#include "replicator.h"

#include <errno.h>
#include <stdlib.h>

bool repl_job_start(repl_t *r, repl_job_t *j, uv_work_cb fn, uv_after_work_cb done)
{
	if (j->busy || r->stopping)
		return false;
	j->r = r;
	j->work.data = j;
	j->result = 0;
	if (uv_queue_work(r->loop, &j->work, fn, done) < 0)
		return false;
	j->busy = true;
	return true;
}

int repl_seqs_add(repl_seqs_t *set, uint64_t v)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : REPL_SEQS_CAP_MIN;
		uint64_t *p = realloc(set->v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		set->v = p;
		set->cap = cap;
	}
	set->v[set->n++] = v;
	return 0;
}
