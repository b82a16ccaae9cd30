/*
 * wc in C: `wc [--mode map|read] [--window BYTES] NAME...` prints, for each famfs dataset NAME,
 * the line `{lines} {words} {bytes} {NAME}`, counting as coreutils wc does in the C locale
 * (lines are '\n' bytes; words are maximal runs of bytes other than space, \t, \n, \v, \f, \r),
 * like the Rust example guests/examples/wc.
 *
 * It is a famfs-run guest written against the WIT contract alone (wit/dataset.wit, world
 * `analytics`), through the C bindings wit-bindgen generates (analytics.h / analytics.c /
 * analytics_component_type.o); built with clang for wasm32-wasi against wasi-libc:
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -fuse-ld=/usr/bin/wasm-ld-14 \
 *       -I GENERATED -I guests/c wc.c GENERATED/analytics.c GENERATED/analytics_component_type.o -o wc-c.wasm
 *
 * --mode map (the default) maps the dataset zero-copy, window by window: the window's address
 * range is reserved with memory.grow (never through malloc, which must not hand those pages
 * out), placed by the dataset's map unit and reused for every window, as the WIT's `map-unit`
 * and `map-into` documentation describes (guests/c/famfs_window.h).
 * --mode read copies the bytes out with `read` instead (lists come back through cabi_realloc).
 *
 * Errors print `wc: NAME: CODE` (CODE: the WIT error-code name) and exit 1; bad usage exits 2.
 */
#include "analytics.h"
#include "famfs_window.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 65536u

typedef famfs_dataset_catalog_error_code_t error_code_t;

static const char *code_name(error_code_t code) {
    switch (code) {
    case FAMFS_DATASET_TYPES_ERROR_CODE_NOT_FOUND: return "not-found";
    case FAMFS_DATASET_TYPES_ERROR_CODE_NOT_PERMITTED: return "not-permitted";
    case FAMFS_DATASET_TYPES_ERROR_CODE_INVALID_ARGUMENT: return "invalid-argument";
    case FAMFS_DATASET_TYPES_ERROR_CODE_NO_ADDRESS_SPACE: return "no-address-space";
    case FAMFS_DATASET_TYPES_ERROR_CODE_MEDIA_ERROR: return "media-error";
    case FAMFS_DATASET_TYPES_ERROR_CODE_IO: return "io";
    default: return "unknown-error";
    }
}

static void usage(void) {
    fprintf(stderr, "usage: wc [--mode map|read] [--window BYTES] NAME...\n");
    exit(2);
}

/* Counts carried across chunk boundaries: a word split between two chunks counts once. */
struct counts {
    uint64_t lines, words, bytes;
    int after_space; /* 1 if the last byte seen separated words (or nothing was seen yet) */
};

static void feed(struct counts *c, const unsigned char *p, size_t n) {
    int prev = c->after_space;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = p[i];
        int space = b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r';
        c->words += (uint64_t)(prev && !space);
        c->lines += (uint64_t)(b == '\n');
        prev = space;
    }
    c->after_space = prev;
    c->bytes += n;
}

/* The reserved window, placed and reused by famfs_window.h for every window. */
static famfs_window_t window_range;

static int count_mapped(famfs_dataset_catalog_borrow_dataset_t ds, uint64_t len, uint64_t window,
                        struct counts *c, const char **why) {
    for (uint64_t off = 0; off < len; off += window) {
        uint64_t n = len - off < window ? len - off : window;
        famfs_dataset_catalog_own_mapping_t m;
        const unsigned char *data;
        error_code_t err;
        if (!famfs_map_window(ds, &window_range, off, (uint32_t)n, &m, &data, &err)) {
            *why = err == FAMFS_DATASET_TYPES_ERROR_CODE_NO_ADDRESS_SPACE ? "memory-grow-failed" : code_name(err);
            return 0;
        }
        feed(c, data, (size_t)n);
        /* Dropping the mapping unmaps it; the range reads as zeros and takes the next window. */
        famfs_dataset_catalog_mapping_drop_own(m);
    }
    return 1;
}

static int count_read(famfs_dataset_catalog_borrow_dataset_t ds, uint64_t len, struct counts *c,
                      const char **why) {
    const uint32_t chunk = 1u << 20;
    for (uint64_t off = 0; off < len; off += chunk) {
        analytics_list_u8_t bytes;
        error_code_t err;
        if (!famfs_dataset_catalog_method_dataset_read(ds, off, chunk, &bytes, &err)) {
            *why = code_name(err);
            return 0;
        }
        feed(c, bytes.ptr, bytes.len);
        analytics_list_u8_free(&bytes);
    }
    return 1;
}

int main(int argc, char **argv) {
    int map = 1;
    uint64_t window = 64ull << 20;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            if (strcmp(m, "map") == 0) {
                map = 1;
            } else if (strcmp(m, "read") == 0) {
                map = 0;
            } else {
                usage();
            }
        } else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
            char *end;
            unsigned long long w = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || w == 0) {
                usage();
            }
            /* Windows start at multiples of 64 KiB (map's offset rule). */
            window = (w + PAGE - 1) / PAGE * PAGE;
        } else {
            usage();
        }
    }
    if (i == argc) {
        usage();
    }
    for (; i < argc; i++) {
        const char *name = argv[i];
        analytics_string_t s;
        analytics_string_set(&s, name);
        famfs_dataset_catalog_own_dataset_t ds;
        error_code_t err;
        if (!famfs_dataset_catalog_open(&s, &ds, &err)) {
            fprintf(stderr, "wc: %s: %s\n", name, code_name(err));
            return 1;
        }
        famfs_dataset_catalog_borrow_dataset_t b = famfs_dataset_catalog_borrow_dataset(ds);
        uint64_t len = famfs_dataset_catalog_method_dataset_len(b);
        struct counts c = {0, 0, 0, 1};
        const char *why = NULL;
        int ok = map ? count_mapped(b, len, window, &c, &why) : count_read(b, len, &c, &why);
        famfs_dataset_catalog_dataset_drop_own(ds);
        if (!ok) {
            fprintf(stderr, "wc: %s: %s\n", name, why);
            return 1;
        }
        printf("%llu %llu %llu %s\n", (unsigned long long)c.lines, (unsigned long long)c.words,
               (unsigned long long)c.bytes, name);
    }
    return 0;
}
