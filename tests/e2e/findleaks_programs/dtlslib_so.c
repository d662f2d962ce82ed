/* Shared library for dtls.c (built as libfl_dtlslib.so and dlopen'ed, so its __thread variables
 * live in dynamically allocated TLS blocks, one per thread, allocated on first use). */
__thread void *fl_dtls_slots[4];
__thread char fl_dtls_pad[200];
void *fl_lib_global;                 /* the library's own writable data */

void fl_dtls_set(int i, void *p) {
    fl_dtls_pad[0] = 1;
    fl_dtls_slots[i] = p;
}

void *fl_dtls_addr(void) { return &fl_dtls_slots[0]; }

void fl_lib_keep(void *p) { fl_lib_global = p; }
