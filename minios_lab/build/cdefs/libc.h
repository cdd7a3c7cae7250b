/* cffi declarations for the libc unit (kernel/lib/printf.c, string.c).
 *
 * The kernel defines these functions under their C names (strlen, ...).
 * Inside the Python extension those would clash with glibc's, so cbuild
 * renames each one to the minios_ name declared here and makes every other
 * kernel symbol local. Calling lib.minios_strlen therefore always runs the
 * kernel's code, never glibc's.
 *
 * vsnprintf takes a va_list, which Python cannot build; snprintf is
 * declared instead. cffi calls a variadic function when every extra
 * argument is a cdata of an explicit type, e.g. ffi.cast("long long", v). */

int minios_snprintf(char *buf, size_t size, const char *fmt, ...);

size_t minios_strlen(const char *s);
size_t minios_strnlen(const char *s, size_t max);
int minios_strcmp(const char *a, const char *b);
int minios_strncmp(const char *a, const char *b, size_t n);
char *minios_strcpy(char *dst, const char *src);
char *minios_strncpy(char *dst, const char *src, size_t n);
char *minios_strchr(const char *s, int c);
char *minios_strrchr(const char *s, int c);
char *minios_strstr(const char *haystack, const char *needle);
void *minios_memcpy(void *dst, const void *src, size_t n);
void *minios_memmove(void *dst, const void *src, size_t n);
void *minios_memset(void *dst, int c, size_t n);
int minios_memcmp(const void *a, const void *b, size_t n);
unsigned long minios_strtoul(const char *s, char **end, int base);
