/*
 * LD_PRELOAD shim for load generators that cannot present a client certificate
 * (wrk, h2load): every SSL_CTX that OpenSSL creates in the process gets the certificate
 * chain and key named by BENCH_CLIENT_CERT and BENCH_CLIENT_KEY, so the server's
 * mutual TLS handshake really happens. It also makes every handshake a full one: wrk
 * reuses its SSL objects with SSL_clear, which keeps the last session and so offers
 * resumption on the next connection to any server that issued a ticket; the wrapped
 * SSL_clear drops that session. Built by bench/run.sh:
 *   gcc -shared -fPIC -O2 -o client_cert_preload.so client_cert_preload.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

#define FILETYPE_PEM 1

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
    static SSL_CTX *(*real_new)(const SSL_METHOD *);
    static int (*use_chain)(SSL_CTX *, const char *);
    static int (*use_key)(SSL_CTX *, const char *, int);
    if (real_new == NULL) {
        real_new = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
        use_chain = (int (*)(SSL_CTX *, const char *))
            dlsym(RTLD_DEFAULT, "SSL_CTX_use_certificate_chain_file");
        use_key = (int (*)(SSL_CTX *, const char *, int))
            dlsym(RTLD_DEFAULT, "SSL_CTX_use_PrivateKey_file");
    }
    SSL_CTX *ctx = real_new(method);
    const char *cert = getenv("BENCH_CLIENT_CERT");
    const char *key = getenv("BENCH_CLIENT_KEY");
    if (ctx != NULL && cert != NULL && key != NULL && use_chain != NULL && use_key != NULL) {
        if (use_chain(ctx, cert) != 1 || use_key(ctx, key, FILETYPE_PEM) != 1)
            fprintf(stderr, "client_cert_preload: cannot load %s / %s\n", cert, key);
    }
    return ctx;
}

int SSL_clear(SSL *ssl)
{
    static int (*real_clear)(SSL *);
    static int (*set_session)(SSL *, SSL_SESSION *);
    if (real_clear == NULL) {
        real_clear = (int (*)(SSL *)) dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(SSL *, SSL_SESSION *)) dlsym(RTLD_DEFAULT, "SSL_set_session");
    }
    int done = real_clear(ssl);
    if (done == 1 && set_session != NULL)
        set_session(ssl, NULL);
    return done;
}
