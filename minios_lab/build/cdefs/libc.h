/* The libc unit (kernel/lib/printf.c, string.c) declares nothing of its own
 * here: its functions come from the marked parts of <minios/string.h> and
 * <minios/printf.h>.
 *
 * The kernel defines these functions under their C names (strlen, ...).
 * Inside the Python extension those would clash with glibc's, so cdefgen
 * declares them as minios_strlen, ... and cbuild renames the kernel's
 * symbols to match and makes every other kernel symbol local. Calling
 * lib.minios_strlen therefore always runs the kernel's code, never glibc's.
 *
 * vsnprintf takes a va_list, which Python cannot build, so it is left out;
 * cffi calls snprintf when every extra argument is a cdata of an explicit
 * type, e.g. ffi.cast("long long", v). */
