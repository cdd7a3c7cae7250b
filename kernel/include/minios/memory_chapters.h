/*
 * The booted guest's memory chapters (kernel/mm/memory_chapters.c), run by
 * start_kernel() in this order after the libc: first map all memory, then
 * hand the free pages to the page allocator. Each prints its section and
 * returns 0 on success.
 */
#ifndef MINIOS_MEMORY_CHAPTERS_H
#define MINIOS_MEMORY_CHAPTERS_H

int pagetables_chapter(void);
int mm_chapter(void);

#endif
