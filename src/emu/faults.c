/* faults — fault injection of the emulated node (faults.h). */
#include "emu/faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

static const char *const g_names[EMU_FAULT__N] = {
    "error", "refuse", "stall-first", "stall-mid", "disconnect-mid", "slow-start", "down",
};

void emu_faults_init(struct emu_faults *fs)
{
    memset(fs, 0, sizeof *fs);
}

const char *emu_fault_name(enum emu_fault_kind k)
{
    return (unsigned)k < EMU_FAULT__N ? g_names[k] : "?";
}

int emu_fault_kind_from_name(const char *name)
{
    for (int k = 0; k < EMU_FAULT__N; k++)
        if (!strcmp(name, g_names[k])) return k;
    return -1;
}

int emu_fault_parse(enum emu_fault_kind k, const char *val, struct emu_faults *fs,
                    char *err, size_t errlen)
{
    struct emu_fault f = {.rate = 0};
    const char *name = emu_fault_name(k);
    if (!val || !*val) {
        snprintf(err, errlen, "--fault-%s: missing value", name);
        return -1;
    }
    switch (k) {
    case EMU_FAULT_ERROR:
    case EMU_FAULT_REFUSE:
    case EMU_FAULT_DISCONNECT_MID:
        if (util_parse_double(val, 0, 1, &f.rate) < 0) {
            snprintf(err, errlen, "--fault-%s: '%s' is not a probability in [0,1]", name, val);
            return -1;
        }
        break;
    case EMU_FAULT_STALL_FIRST:
    case EMU_FAULT_STALL_MID: {
        char tmp[64];
        if (strlen(val) >= sizeof tmp) {
            snprintf(err, errlen, "--fault-%s: value too long", name);
            return -1;
        }
        strcpy(tmp, val);
        char *at = strchr(tmp, '@');
        f.rate = 1;
        if (at) {
            *at = 0;
            if (util_parse_double(at + 1, 0, 1, &f.rate) < 0) {
                snprintf(err, errlen, "--fault-%s: '%s' after '@' is not a probability in [0,1]",
                         name, at + 1);
                return -1;
            }
        }
        if (util_parse_double(tmp, 0, 3600e3, &f.ms) < 0) {
            snprintf(err, errlen, "--fault-%s: '%s' is not a duration in ms (0..3600000)",
                     name, tmp);
            return -1;
        }
        break;
    }
    case EMU_FAULT_SLOW_START:
        if (util_parse_double(val, 0, 3600e3, &f.ms) < 0) {
            snprintf(err, errlen, "--fault-%s: '%s' is not a duration in ms (0..3600000)",
                     name, val);
            return -1;
        }
        f.rate = f.ms > 0;
        break;
    case EMU_FAULT_DOWN: {
        char tmp[64];
        const char *colon = strchr(val, ':');
        if (!colon || strlen(val) >= sizeof tmp) {
            snprintf(err, errlen, "--fault-down: '%s': expected UP_MS:DOWN_MS", val);
            return -1;
        }
        memcpy(tmp, val, (size_t)(colon - val));
        tmp[colon - val] = 0;
        if (util_parse_double(tmp, 1, 3600e3, &f.ms) < 0 ||
            util_parse_double(colon + 1, 1, 3600e3, &f.ms2) < 0) {
            snprintf(err, errlen, "--fault-down: '%s': expected UP_MS:DOWN_MS, each 1..3600000",
                     val);
            return -1;
        }
        f.rate = 1;
        break;
    }
    default:
        snprintf(err, errlen, "unknown fault kind %d", (int)k);
        return -1;
    }
    fs->f[k] = f;
    return 0;
}

void emu_faults_draw(const struct emu_faults *fs, struct rng *r, struct emu_fault_draw *d)
{
    double u[5];
    for (int i = 0; i < 5; i++) u[i] = rng_uniform(r);
    memset(d, 0, sizeof *d);
    d->refuse = u[0] < fs->f[EMU_FAULT_REFUSE].rate;
    d->error = u[1] < fs->f[EMU_FAULT_ERROR].rate;
    d->disconnect_mid = u[2] < fs->f[EMU_FAULT_DISCONNECT_MID].rate;
    if (u[3] < fs->f[EMU_FAULT_STALL_FIRST].rate) d->stall_first_ms = fs->f[EMU_FAULT_STALL_FIRST].ms;
    if (u[4] < fs->f[EMU_FAULT_STALL_MID].rate) d->stall_mid_ms = fs->f[EMU_FAULT_STALL_MID].ms;
}
