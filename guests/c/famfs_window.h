/*
 * famfs_window.h: zero-copy windows placed as wit/dataset.wit asks, for C guests built on the
 * wit-bindgen C bindings of world `analytics` (include "analytics.h" first).
 *
 * A window of `len` bytes from dataset offset `offset` (a multiple of 64 KiB) is mapped into a
 * range of linear memory reserved with memory.grow (never malloc, which must not hand those
 * pages out), placed so that the whole window maps without any copy:
 *
 * - on a source that maps only whole units (`dataset.map-unit` above 64 KiB: device-dax,
 *   2 MiB), the range's address agrees with `offset` modulo the unit and it is reserved through
 *   the end of the unit holding the last byte; `dataset.map-into` is told how much was
 *   reserved, so the host maps the last unit whole instead of copying it;
 * - elsewhere a window of 2 MiB or more agrees with `offset` modulo 2 MiB, so that DAX file
 *   systems and huge-page page caches map it with 2 MiB pages.
 *
 * One famfs_window_t is reused for consecutive windows while it is large enough and in phase
 * (windows whose size is a multiple of 2 MiB always are); a new range is reserved otherwise
 * (the old one stays reserved, unused). Single-threaded, as wasm32-wasi guests are.
 */
#ifndef FAMFS_WINDOW_H
#define FAMFS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#define FAMFS_WASM_PAGE 65536u
#define FAMFS_HUGE_PAGE (2u << 20)

/* A reserved range of linear memory: `bytes` bytes at guest address `at` (0 bytes: none yet). */
typedef struct {
    uint32_t at;
    uint32_t bytes;
} famfs_window_t;

static inline uint64_t famfs_round_up(uint64_t x, uint64_t to) {
    return (x + to - 1) / to * to;
}

/*
 * Maps `len` bytes of `ds` from `offset` (a multiple of 64 KiB) into `w`, reserving or reusing
 * its range: returns 1, the mapping in *m and the guest address of dataset byte `offset` in
 * *data, or 0 and the error in *err (FAMFS_DATASET_TYPES_ERROR_CODE_NO_ADDRESS_SPACE when
 * memory.grow failed, or the window with the unit before it would not fit in 4 GiB). On a source
 * that maps whole units, the mapping starts at the unit holding `offset`, so a window of any
 * size maps without copying its first partial unit. Drop the mapping before mapping the next
 * window into the same `w`.
 */
static inline int famfs_map_window(famfs_dataset_catalog_borrow_dataset_t ds, famfs_window_t *w, uint64_t offset,
                                   uint32_t len, famfs_dataset_catalog_own_mapping_t *m, const unsigned char **data,
                                   famfs_dataset_catalog_error_code_t *err) {
    uint64_t unit = famfs_dataset_catalog_method_dataset_map_unit(ds);
    int whole_units = unit > FAMFS_WASM_PAGE && unit <= (1u << 30);
    uint64_t start = whole_units ? offset / unit * unit : offset;
    uint64_t map_len = offset - start + len;
    uint64_t place = whole_units ? unit : (map_len >= FAMFS_HUGE_PAGE ? FAMFS_HUGE_PAGE : FAMFS_WASM_PAGE);
    uint64_t need = whole_units ? famfs_round_up(start + map_len, unit) - start : famfs_round_up(map_len, FAMFS_WASM_PAGE);
    if (need >= (1ull << 32)) {
        *err = FAMFS_DATASET_TYPES_ERROR_CODE_NO_ADDRESS_SPACE;
        return 0;
    }
    if (w->bytes < need || w->at % place != start % place) {
        /* Fresh pages at the top of memory, after the padding that puts the range in phase. */
        uint64_t top = (uint64_t)__builtin_wasm_memory_size(0) * FAMFS_WASM_PAGE;
        uint64_t pad = (start % place + place - top % place) % place;
        size_t old = __builtin_wasm_memory_grow(0, (size_t)((pad + need) / FAMFS_WASM_PAGE));
        if (old == (size_t)-1) {
            *err = FAMFS_DATASET_TYPES_ERROR_CODE_NO_ADDRESS_SPACE;
            return 0;
        }
        w->at = (uint32_t)((uint64_t)old * FAMFS_WASM_PAGE + pad);
        w->bytes = (uint32_t)need;
    }
    famfs_dataset_catalog_map_flags_t none = 0;
    if (!famfs_dataset_catalog_method_dataset_map_into(ds, start, (uint32_t)map_len, w->at, w->bytes, none, m, err)) {
        return 0;
    }
    uint32_t at = famfs_dataset_catalog_method_mapping_addr(famfs_dataset_catalog_borrow_mapping(*m));
    *data = (const unsigned char *)(uintptr_t)at + (offset - start);
    return 1;
}

#endif
