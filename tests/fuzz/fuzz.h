/*
 * fuzz.h - the libFuzzer entry point every target in tests/fuzz defines.
 *
 * Each target is built twice: with clang's -fsanitize=fuzzer (plus ASan and
 * UBSan) as a fuzzer (scripts/fuzz), and with driver.c as an ordinary
 * program that runs every file of the seed corpus and of regressions/
 * through the target once (the regression test in scripts/test). A target
 * aborts (assert) when an invariant breaks; a sanitizer report or a crash is
 * a failure in both builds.
 */
#ifndef ESBANK_FUZZ_H
#define ESBANK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Input bytes at most this many are looked at (bigger inputs are cut). */
#define FUZZ_INPUT_BYTES_MAX (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fresh private temporary directory, created once per process. */
const char *fuzz_tmpdir(void);

#endif
