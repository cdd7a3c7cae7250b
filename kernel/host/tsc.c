/*
 * The host build's stand-in for the CPU's time-stamp counter: a plain
 * variable that Python advances when a lesson wants time to pass.
 */
#include <arch/cpu.h>

uint64_t host_tsc;
