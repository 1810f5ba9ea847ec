// Wall-clock intervals for progress lines, tokens/s and benchmarks: a monotonic clock, so a
// system time change (NTP, a suspended VM) never shows as a negative or huge interval.
#ifndef MEDTUNE_COMMON_CLOCK_H
#define MEDTUNE_COMMON_CLOCK_H

// Seconds since an arbitrary fixed point (CLOCK_MONOTONIC); only differences are meaningful.
double clock_now_s(void);

#endif
