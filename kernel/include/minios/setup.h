/*
 * The guest's safety net, laid at start of day (kernel/setup.c).
 */
#ifndef MINIOS_SETUP_H
#define MINIOS_SETUP_H

/* Map shared_info, install the trap table and the event/failsafe
 * callbacks, unmap page 0, map the kernel's text and read-only data
 * read-only. Panics if Xen refuses any of it. */
void setup_safety_net(void);

#endif
