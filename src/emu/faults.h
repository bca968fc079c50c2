/* faults — fault injection of the emulated node (docs/emulator.md "Faults").
 * Each fault is a flag of `ferry emulate`; each has a probability per request (drawn
 * from the emulator's seeded RNG, so a seed reproduces the same faulty requests) and,
 * where it is a delay, a duration in wall-clock milliseconds (not scaled by
 * --time-scale: it stands for a misbehaving server, not for modelled work). */
#ifndef FERRY_EMU_FAULTS_H
#define FERRY_EMU_FAULTS_H
#include <stddef.h>

#include "util/rng.h"

enum emu_fault_kind {
    EMU_FAULT_ERROR = 0,       /* HTTP 500 with an OpenAI error object, nothing computed */
    EMU_FAULT_REFUSE,          /* connection reset (RST) before any response byte */
    EMU_FAULT_STALL_FIRST,     /* request held this long before it enters the model */
    EMU_FAULT_STALL_MID,       /* output paused this long after half of the tokens */
    EMU_FAULT_DISCONNECT_MID,  /* connection dropped after half of the tokens */
    EMU_FAULT_SLOW_START,      /* for the first ms after start: 503 "Loading model" */
    EMU_FAULT_DOWN,            /* listening socket closed periodically: ECONNREFUSED */
    EMU_FAULT__N
};

struct emu_fault {
    double rate;  /* probability per request in [0,1]; 0 = off */
    double ms;    /* duration of a stall / of the slow start, wall-clock ms; for down:
                   * the time accepting connections in each cycle */
    double ms2;   /* down: the time refusing connections in each cycle */
};

struct emu_faults {
    struct emu_fault f[EMU_FAULT__N];
};

/* What happens to one request, drawn once when it arrives. */
struct emu_fault_draw {
    int error, refuse, disconnect_mid;
    double stall_first_ms, stall_mid_ms;  /* 0 = none */
};

void emu_faults_init(struct emu_faults *fs);          /* all off */
const char *emu_fault_name(enum emu_fault_kind k);   /* "error", "refuse", ... */

/* Parses the value of one --fault-KIND option: "P" (a probability) for error, refuse
 * and disconnect-mid; "MS" or "MS@P" (duration, optional probability, default 1) for
 * stall-first and stall-mid; "MS" for slow-start; "UP_MS:DOWN_MS" for down (cycles
 * of accepting for UP_MS, then refusing connections for DOWN_MS, starting up). 0, or
 * -1 with a message in err. */
int emu_fault_parse(enum emu_fault_kind k, const char *val, struct emu_faults *fs,
                    char *err, size_t errlen);

/* Looks up a kind from its option name without "--fault-" ("stall-first"); -1 if none. */
int emu_fault_kind_from_name(const char *name);

/* Draws the faults of one request. Draws a fixed number of uniforms whatever the
 * outcome, so the n-th request's faults depend only on the seed and n. */
void emu_faults_draw(const struct emu_faults *fs, struct rng *r, struct emu_fault_draw *d);

#endif
