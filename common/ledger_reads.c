/*
 * ledger_reads.c - the ledger's read models and totals: UTC civil dates,
 * the sums of sum_transactions (layout at the top of ledger.c),
 * inactive_users, the totals and iteration over accounts and keys. Pure.
 */
#include "ledger_impl.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- civil dates (H. Hinnant's algorithms, proleptic Gregorian, UTC) ---- */

static int64_t ledger_days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void ledger_civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t ledger_days_in_month(int64_t y, int64_t m)
{
	static const int8_t days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return days[m - 1] + (m == 2 && leap);
}

/* ---- read model of sum_transactions ---- */

int64_t ledger_sums_get(const ledger_sums_t *s, uint64_t tag)
{
	if (!s->tags)
		return 0;
	for (uint32_t i = (uint32_t)ledger_mix64(tag) & s->mask; s->tags[i]; i = (i + 1) & s->mask)
		if (s->tags[i] == tag)
			return s->totals[i];
	return 0;
}

static int64_t ledger_add_sat(int64_t a, int64_t b)
{
	assert(a >= 0 && b >= 0);
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

void ledger_sums_add(ledger_sums_t *s, uint64_t tag, int64_t amount)
{
	uint32_t i = (uint32_t)ledger_mix64(tag) & s->mask;
	while (s->tags[i] && s->tags[i] != tag)
		i = (i + 1) & s->mask;
	if (!s->tags[i]) {
		s->tags[i] = tag;
		s->totals[i] = 0;
		s->used++;
	}
	s->totals[i] = ledger_add_sat(s->totals[i], amount);
}

/* Makes room for three more dates (one event adds at most a year, month, day). */
int ledger_sums_reserve(ledger_sums_t *s)
{
	uint32_t cap = s->tags ? s->mask + 1 : 0;
	if ((uint64_t)(s->used + 3) * 2 <= cap)
		return 0;
	uint32_t ncap = cap ? cap * 2 : LEDGER_INDEX_CAP_MIN;
	if (ncap <= cap)
		return -ENOMEM;
	ledger_sums_t n = { .mask = ncap - 1 };
	n.tags = calloc(ncap, sizeof(*n.tags));
	n.totals = calloc(ncap, sizeof(*n.totals));
	if (!n.tags || !n.totals) {
		free(n.tags);
		free(n.totals);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cap; i++)
		if (s->tags[i])
			ledger_sums_add(&n, s->tags[i], s->totals[i]);
	free(s->tags);
	free(s->totals);
	*s = n;
	return 0;
}

void ledger_sums_record(ledger_t *l, int64_t ts_ms, int64_t amount)
{
	assert(ts_ms >= 0 && amount > 0);
	int64_t days = ts_ms / LEDGER_DAY_MS, y, m, d;
	ledger_civil_from_days(days, &y, &m, &d);
	ledger_sums_add(&l->sums, SUM_YEAR | (uint64_t)y, amount);
	ledger_sums_add(&l->sums, SUM_MONTH | (uint64_t)(y * 12 + m - 1), amount);
	ledger_sums_add(&l->sums, SUM_DAY | (uint64_t)days, amount);
	l->moved_total = ledger_add_sat(l->moved_total, amount);
}

int64_t ledger_sum_transactions(const ledger_t *l, int64_t year, int64_t month, int64_t day)
{
	assert(l && year >= 0 && month >= 0 && month <= 12 && day >= 0 && day <= 31);
	assert((month == 0 || year > 0) && (day == 0 || month > 0));
	if (year == 0)
		return l->moved_total;
	if (year < 1970 || year > 1000000)
		return 0; /* no event before the epoch; the tags hold years far beyond */
	if (month == 0)
		return ledger_sums_get(&l->sums, SUM_YEAR | (uint64_t)year);
	if (day == 0)
		return ledger_sums_get(&l->sums, SUM_MONTH | (uint64_t)(year * 12 + month - 1));
	if (day > ledger_days_in_month(year, month))
		return 0;
	int64_t days = ledger_days_from_civil(year, month, day);
	return ledger_sums_get(&l->sums, SUM_DAY | (uint64_t)days);
}

uint64_t ledger_inactive_users(const ledger_t *l, int64_t days, int64_t now_ms)
{
	assert(l && days >= 0);
	int64_t since;
	if (days > (now_ms - INT64_MIN / 2) / LEDGER_DAY_MS)
		since = INT64_MIN;
	else
		since = now_ms - days * LEDGER_DAY_MS;
	uint64_t n = 0;
	for (uint32_t i = 0; i < l->accounts_n; i++) {
		int64_t last = l->accounts[i].last_activity_ms;
		if (last == 0 || last < since)
			n++;
	}
	return n;
}

/* ---- totals ---- */

uint64_t ledger_last_seq(const ledger_t *l)
{
	return l->last_seq;
}

int64_t ledger_last_ts(const ledger_t *l)
{
	return l->last_ts;
}

size_t ledger_account_count(const ledger_t *l)
{
	return l->accounts_n;
}

int64_t ledger_total_balance(const ledger_t *l)
{
	return l->total_balance;
}

int64_t ledger_total_withdrawn(const ledger_t *l)
{
	return l->total_withdrawn;
}

int ledger_each_account(const ledger_t *l, int (*cb)(const ledger_account_t *a, void *arg),
			void *arg)
{
	assert(l && cb);
	for (uint32_t i = 0; i < l->accounts_n; i++) {
		int rc = cb(&l->accounts[i], arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int ledger_each_key(const ledger_t *l,
		    int (*cb)(const char *key, size_t n, const ledger_key_entry_t *e, void *arg),
		    void *arg)
{
	assert(l && cb);
	for (uint32_t i = 0; i < l->keys_n; i++) {
		const ledger_key_rec_t *r = &l->keys[ledger_keys_slot(l, i)];
		int rc = cb(r->key, r->len, &r->entry, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}
