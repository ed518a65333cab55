/* det-keygen's RSA prime candidates (c2sp.org/det-keygen, steps 8-13.2), and the cheap first step
 * of their trial division, in C: the part of RSA key derivation that is all interpreter overhead in
 * Python (~14 SHA-256 blocks and ~3 small remainders per candidate, ~730 candidates per RSA-2048
 * key). Also the base-2 Fermat test that rejects most composite candidates, on OpenSSL's
 * Montgomery arithmetic. pki/candidates.py loads the library `make` builds from this file;
 * pki/detkeygen.py checks it against its Python code before use, and keeps that code where there is
 * no compiler.
 *
 * Nothing secret leaves through this file's interface but the candidates themselves (which become
 * Python ints, beyond wiping); the DRBG state and the buffers that held it or a candidate are
 * wiped, on the heap when a stream is freed and on the stack when a function returns, and the
 * Fermat test clears its numbers after each test (OpenSSL's BN_MONT_CTX keeps the last modulus
 * until the next test: it has no clear function). No global mutable state: streams and Fermat
 * states in different threads share nothing. Plain C99.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ABI_VERSION 4

/* ---- SHA-256 (FIPS 180-4). The block function is OpenSSL's SHA256_Transform when the caller
 * passes it (SHA-NI or AVX2 assembly; the whole stream ~3x faster here), else this portable one. ---- */

/* Room for a whole SHA256_CTX (112 bytes in OpenSSL 3): SHA256_Transform reads only h[0..7]. */
typedef struct { uint32_t h[32]; } sha_ctx;
typedef void (*block_fn)(sha_ctx *ctx, const uint8_t block[64]);

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* memset that the compiler may not drop as a dead store */
static void wipe(void *p, size_t n) {
    volatile uint8_t *b = p;
    while (n--) *b++ = 0;
}

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void portable_block(sha_ctx *ctx, const uint8_t p[64]) {
    uint32_t w[64], *h = ctx->h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    wipe(w, sizeof w);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Finish a hash whose state `ctx` has absorbed `done` whole blocks, over the rest of the message
 * (two parts, so "V || byte || material" needs no copy into one buffer). */
static void sha_finish(block_fn block, sha_ctx *ctx, uint64_t done, const uint8_t *a, size_t alen,
                       const uint8_t *b, size_t blen, uint8_t out[32]) {
    uint8_t buf[64];
    size_t fill = 0;
    uint64_t total = done * 64 + alen + blen;
    const uint8_t *parts[2] = {a, b};
    size_t lens[2] = {alen, blen};
    for (int part = 0; part < 2; part++) {
        const uint8_t *p = parts[part];
        size_t n = lens[part];
        while (n > 0) {
            size_t take = 64 - fill < n ? 64 - fill : n;
            memcpy(buf + fill, p, take);
            fill += take; p += take; n -= take;
            if (fill == 64) { block(ctx, buf); fill = 0; }
        }
    }
    buf[fill++] = 0x80;
    if (fill > 56) { memset(buf + fill, 0, 64 - fill); block(ctx, buf); fill = 0; }
    memset(buf + fill, 0, 56 - fill);
    for (int i = 0; i < 8; i++) buf[63 - i] = (uint8_t)((total * 8) >> (8 * i));
    block(ctx, buf);
    for (int i = 0; i < 8; i++) put_be32(out + 4 * i, ctx->h[i]);
    wipe(buf, sizeof buf);
}

/* ---- HMAC-SHA256 (RFC 2104) under a 32-byte key, its two pad blocks absorbed once per key ---- */

typedef struct { sha_ctx inner, outer; } hmac_key;

static void hmac_set_key(block_fn block, hmac_key *k, const uint8_t key[32]) {
    uint8_t pad[64];
    memset(pad, 0, sizeof pad);
    memcpy(pad, key, 32);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36;
    memset(&k->inner, 0, sizeof k->inner);
    memcpy(k->inner.h, H0, sizeof H0);
    block(&k->inner, pad);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    memset(&k->outer, 0, sizeof k->outer);
    memcpy(k->outer.h, H0, sizeof H0);
    block(&k->outer, pad);
    wipe(pad, sizeof pad);
}

/* HMAC(key, v || sep || material), sep and material optional (sep < 0: none). */
static void hmac(block_fn block, const hmac_key *k, const uint8_t v[32], int sep, const uint8_t *material,
                 size_t material_len, uint8_t out[32]) {
    uint8_t head[33], digest[32];
    sha_ctx ctx = k->inner;
    memcpy(head, v, 32);
    size_t head_len = 32;
    if (sep >= 0) head[head_len++] = (uint8_t)sep;
    sha_finish(block, &ctx, 1, head, head_len, material, material_len, digest);
    ctx = k->outer;
    sha_finish(block, &ctx, 1, digest, 32, NULL, 0, out);
    wipe(head, sizeof head);
    wipe(digest, sizeof digest);
    wipe(&ctx, sizeof ctx);
}

/* ---- Trial division by the odd primes below 800 (what pki/detkeygen.py's first step does), as
 * products below 2^32 smallest first: the first (3 * 5 * ... * 29) already rejects ~70% of
 * candidates. A candidate's remainder modulo a product is sum(word_i * (2^(32 i) mod product)),
 * multiplications and additions only, no division per word. ---- */

/* The odd primes below 800, pki/detkeygen.py's _SMALL_BOUND (tests compare the two streams). */
static const uint16_t SMALL_PRIMES[] = {
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73,
    79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179,
    181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283,
    293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419,
    421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523, 541, 547,
    557, 563, 569, 571, 577, 587, 593, 599, 601, 607, 613, 617, 619, 631, 641, 643, 647, 653, 659, 661,
    673, 677, 683, 691, 701, 709, 719, 727, 733, 739, 743, 751, 757, 761, 769, 773, 787, 797,
};
#define SMALL_PRIME_COUNT (sizeof SMALL_PRIMES / sizeof SMALL_PRIMES[0])

/* ---- HMAC_DRBG (SP 800-90A 10.1.2) as det-keygen uses it, and its candidates ---- */

typedef struct {
    block_fn block;
    hmac_key key;
    uint8_t v[32];
    int drawn;             /* whether a candidate was drawn: every later one starts with an update */
    size_t nbytes;         /* candidate length: bits / 16 */
    size_t words;          /* 32-bit words per candidate, rounded up */
    uint32_t *word_buf;    /* the candidate, least significant word first */
    uint32_t products[SMALL_PRIME_COUNT];  /* SMALL_PRIMES in groups, each product below 2^32 */
    uint8_t primes_per_product[SMALL_PRIME_COUNT];
    size_t product_count;
    uint32_t *powers;      /* per product: 2^(32 i) mod product, i < words */
} stream;

/* K = HMAC(K, V || sep || material); V = HMAC(K, V) */
static void drbg_update(stream *s, int sep, const uint8_t *material, size_t len) {
    uint8_t k[32];
    hmac(s->block, &s->key, s->v, sep, material, len, k);
    hmac_set_key(s->block, &s->key, k);
    hmac(s->block, &s->key, s->v, -1, NULL, 0, s->v);
    wipe(k, sizeof k);
}

static void group_small_primes(stream *s) {
    uint64_t product = 1;
    uint8_t count = 0;
    for (size_t i = 0; i < SMALL_PRIME_COUNT; i++) {
        if (product * SMALL_PRIMES[i] >> 32) {
            s->products[s->product_count] = (uint32_t)product;
            s->primes_per_product[s->product_count++] = count;
            product = 1;
            count = 0;
        }
        product *= SMALL_PRIMES[i];
        count++;
    }
    s->products[s->product_count] = (uint32_t)product;
    s->primes_per_product[s->product_count++] = count;
}

static uint32_t product_remainder(const stream *s, size_t j) {
    const uint32_t *power = s->powers + j * s->words;
    uint64_t m = s->products[j], low = 0, high = 0;
    for (size_t i = 0; i < s->words; i++) {
        uint64_t term = (uint64_t)s->word_buf[i] * power[i];
        low += term & 0xffffffffu;
        high += term >> 32;
    }
    /* low, high < words * 2^32 <= 2^42: (high * 2^32 + low) mod m without overflow */
    uint64_t shifted = ((high % m) << 32) % m;
    return (uint32_t)((shifted + low % m) % m);
}

static int survives_small_primes(const stream *s) {
    const uint16_t *p = SMALL_PRIMES;
    for (size_t j = 0; j < s->product_count; j++) {
        uint32_t r = product_remainder(s, j);
        for (int k = 0; k < s->primes_per_product[j]; k++)
            if (r % p[k] == 0) return 0;
        p += s->primes_per_product[j];
    }
    return 1;
}

/* ---- The interface ---- */

int dk_abi_version(void) { return ABI_VERSION; }

/* A candidate stream for det-keygen's instantiate material (seed || personalization) and candidate
 * length (bits / 16 bytes, 8 to 4096). `block` may be NULL (portable SHA-256). NULL on bad
 * arguments or when out of memory. */
void *dk_stream_new(const uint8_t *material, size_t material_len, size_t nbytes, block_fn block) {
    if (nbytes < 8 || nbytes > 4096 || material == NULL) return NULL;
    stream *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->block = block ? block : portable_block;
    s->nbytes = nbytes;
    s->words = (nbytes + 3) / 4;
    group_small_primes(s);
    s->word_buf = calloc(s->words, sizeof *s->word_buf);
    s->powers = calloc(s->product_count * s->words, sizeof *s->powers);
    if (s->word_buf == NULL || s->powers == NULL) {
        free(s->word_buf);
        free(s->powers);
        free(s);
        return NULL;
    }
    for (size_t j = 0; j < s->product_count; j++) {
        uint64_t m = s->products[j], power = 1 % m;
        for (size_t i = 0; i < s->words; i++) {
            s->powers[j * s->words + i] = (uint32_t)power;
            power = (power << 32) % m;
        }
    }
    uint8_t zero_key[32] = {0};
    memset(s->v, 0x01, sizeof s->v);
    hmac_set_key(s->block, &s->key, zero_key);
    drbg_update(s, 0x00, material, material_len);
    drbg_update(s, 0x01, material, material_len);
    return s;
}

/* Draw candidates (each after the spec's update, but the first) until one survives the small
 * primes; write it big-endian to out[nbytes]. Returns how many were drawn. */
long dk_stream_next(void *handle, uint8_t *out) {
    stream *s = handle;
    long drawn = 0;
    for (;;) {
        if (s->drawn) drbg_update(s, 0x00, NULL, 0);
        s->drawn = 1;
        drawn++;
        for (size_t off = 0; off < s->nbytes; off += 32) {
            hmac(s->block, &s->key, s->v, -1, NULL, 0, s->v);
            memcpy(out + off, s->v, s->nbytes - off < 32 ? s->nbytes - off : 32);
        }
        out[0] |= 0xc0;
        out[s->nbytes - 1] |= 0x07;
        memset(s->word_buf, 0, s->words * sizeof *s->word_buf);
        for (size_t i = 0; i < s->nbytes; i++) {
            size_t bit = 8 * (s->nbytes - 1 - i);
            s->word_buf[bit / 32] |= (uint32_t)out[i] << (bit % 32);
        }
        if (survives_small_primes(s)) return drawn;
    }
}

void dk_stream_free(void *handle) {
    stream *s = handle;
    if (s == NULL) return;
    wipe(&s->key, sizeof s->key);
    wipe(s->v, sizeof s->v);
    wipe(s->word_buf, s->words * sizeof *s->word_buf);
    free(s->word_buf);
    free(s->powers);
    free(s);
}

/* ---- The base-2 Fermat test, 2^(n-1) mod n == 1, on OpenSSL's BIGNUM functions (the caller
 * passes their addresses: this library does not link libcrypto, so the candidate stream above
 * works without it). Left to right over the bits of n - 1, a Montgomery squaring each, and where
 * the bit is set a doubling (a shift and at most one subtraction). OpenSSL's own
 * BN_mod_exp_mont_word multiplies by its word with a long division every ~6 bits instead: this is
 * ~7-13% faster per test here (~6% per RSA-2048 key). Only a filter, as pki.libcrypto's: every
 * prime passes. ---- */

/* The fields are named after the functions they point to, in the order of pki/candidates.py's
 * _BN_FUNCTIONS (a test compares the two). */
typedef struct {
    void *(*BN_CTX_new)(void);
    void (*BN_CTX_free)(void *ctx);
    void *(*BN_new)(void);
    void (*BN_clear_free)(void *a);
    void (*BN_clear)(void *a);
    void *(*BN_bin2bn)(const uint8_t *s, int len, void *ret);
    void *(*BN_MONT_CTX_new)(void);
    void (*BN_MONT_CTX_free)(void *mont);
    int (*BN_MONT_CTX_set)(void *mont, const void *mod, void *ctx);
    int (*BN_to_montgomery)(void *r, const void *a, void *mont, void *ctx);
    const void *(*BN_value_one)(void);
    int (*BN_mod_mul_montgomery)(void *r, const void *a, const void *b, void *mont, void *ctx);
    int (*BN_mod_lshift1_quick)(void *r, const void *a, const void *m);
    int (*BN_is_bit_set)(const void *a, int n);
    int (*BN_num_bits)(const void *a);
    int (*BN_cmp)(const void *a, const void *b);
    void *(*BN_copy)(void *a, const void *b);
    void (*ERR_clear_error)(void);
} bn_api;

typedef struct {
    const bn_api *api;
    void *ctx, *mont, *n, *r, *one;
} fermat_state;

void dk_fermat_free(void *handle) {
    fermat_state *f = handle;
    if (f == NULL) return;
    const bn_api *api = f->api;
    if (f->n) api->BN_clear_free(f->n);
    if (f->r) api->BN_clear_free(f->r);
    if (f->one) api->BN_clear_free(f->one);
    if (f->mont) api->BN_MONT_CTX_free(f->mont);
    if (f->ctx) api->BN_CTX_free(f->ctx);
    free(f);
}

/* One thread's numbers for dk_fermat2; NULL when out of memory. `api` must outlive it. */
void *dk_fermat_new(const bn_api *api) {
    fermat_state *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->api = api;
    f->ctx = api->BN_CTX_new();
    f->mont = api->BN_MONT_CTX_new();
    f->n = api->BN_new();
    f->r = api->BN_new();
    f->one = api->BN_new();
    if (!f->ctx || !f->mont || !f->n || !f->r || !f->one) {
        dk_fermat_free(f);
        return NULL;
    }
    return f;
}

/* n big-endian, odd and > 3: 0 if 2^(n-1) mod n != 1 (n is composite), 1 if it is, -1 when
 * OpenSSL failed (out of memory; the caller's next test decides). */
int dk_fermat2(void *handle, const uint8_t *be, size_t len) {
    fermat_state *f = handle;
    const bn_api *api = f->api;
    int result = -1;
    if (len > 0 && len <= 1 << 20 && api->BN_bin2bn(be, (int)len, f->n)
        && api->BN_MONT_CTX_set(f->mont, f->n, f->ctx)
        && api->BN_to_montgomery(f->one, api->BN_value_one(), f->mont, f->ctx) && api->BN_copy(f->r, f->one)) {
        /* n - 1 has the bits of n but the lowest (n is odd); r starts at 1 in Montgomery form */
        int bit = api->BN_num_bits(f->n) - 1;
        for (; bit >= 0; bit--) {
            if (!api->BN_mod_mul_montgomery(f->r, f->r, f->r, f->mont, f->ctx)) break;
            if (bit > 0 && api->BN_is_bit_set(f->n, bit) && !api->BN_mod_lshift1_quick(f->r, f->r, f->n)) break;
        }
        if (bit < 0) result = api->BN_cmp(f->r, f->one) == 0;
    }
    if (result < 0) api->ERR_clear_error();  /* the thread's error queue is shared with Python's ssl */
    api->BN_clear(f->n);
    api->BN_clear(f->r);
    api->BN_clear(f->one);
    return result;
}
