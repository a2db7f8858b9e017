/*
 * Copyright (c) txmsg contributors. See LICENSE for details.
 *
 * loadgen: a small single-threaded epoll load generator for echo servers,
 * plus a C epoll echo server used as the ceiling.  Built and driven by
 * benchmarks/echo.py (cc -O2 -o benchmarks/.build/loadgen benchmarks/loadgen.c).
 *
 *   loadgen pingpong HOST PORT CONNS SECONDS [SIZE=64] [WARMUP=0.3]
 *       CONNS connections; each sends SIZE bytes, waits for all SIZE bytes
 *       back, and repeats.  Round trips and a latency histogram are taken
 *       over SECONDS after a WARMUP.
 *   loadgen stream HOST PORT CONNS SECONDS [CHUNK=65536] [WARMUP=0.3] [WINDOW=1048576]
 *       CONNS connections; each writes CHUNK-byte sends and reads everything
 *       back, with at most WINDOW bytes sent but not yet echoed per connection.
 *   loadgen server HOST PORT
 *       Echo server (level-triggered epoll, TCP_NODELAY); runs until killed.
 *
 * Client modes print "START" when the measured window opens and, when it
 * closes, one JSON line of results that includes the generator's own CPU time
 * (getrusage) and its CPU share of the wall-clock window.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define RBUF (256 * 1024)

/* Latency histogram: 100 ns buckets below 10 ms, 100 us buckets up to 10 s. */
#define FINE_NS 100
#define FINE_N 100000
#define COARSE_NS 100000
#define COARSE_N 100000

static uint32_t fine[FINE_N];
static uint32_t coarse[COARSE_N];
static uint64_t over;
static char rbuf[RBUF];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void record(uint64_t ns) {
    if (ns < (uint64_t)FINE_NS * FINE_N)
        fine[ns / FINE_NS]++;
    else if (ns < (uint64_t)COARSE_NS * COARSE_N)
        coarse[ns / COARSE_NS]++;
    else
        over++;
}

static double percentile_us(uint64_t total, double p) {
    uint64_t rank = (uint64_t)(p * total), seen = 0;
    if (total == 0)
        return 0;
    if (rank >= total)
        rank = total - 1;
    for (int i = 0; i < FINE_N; i++) {
        seen += fine[i];
        if (seen > rank)
            return (i + 0.5) * FINE_NS / 1000.0;
    }
    for (int i = 0; i < COARSE_N; i++) {
        seen += coarse[i];
        if (seen > rank)
            return (i + 0.5) * (double)COARSE_NS / 1000.0;
    }
    return (double)COARSE_NS * COARSE_N / 1000.0;
}

static void nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in address(const char *host, int port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", host);
        exit(2);
    }
    return sa;
}

static int dial(struct sockaddr_in *sa) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)sa, sizeof *sa) < 0)
        die("connect");
    nodelay(fd);
    nonblocking(fd);
    return fd;
}

static void ep_set(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(ep, op, fd, &ev) < 0)
        die("epoll_ctl");
}

/* ------------------------------------------------------------------ clients */

struct conn {
    int fd;
    int alive;
    int out_armed;
    size_t off;      /* bytes of the current request/chunk already sent */
    uint64_t got;    /* pingpong: reply bytes received for the current request */
    uint64_t sent;   /* stream: bytes sent */
    uint64_t recvd;  /* stream: bytes received */
    uint64_t t0;     /* pingpong: when the current request was started */
};

struct run {
    int stream;
    size_t size;     /* request size or chunk size */
    uint64_t window;
    char *payload;
    int ep;
    int measuring;
    uint64_t roundtrips, bytes, errors;
};

static void conn_fail(struct run *r, struct conn *c) {
    r->errors++;
    c->alive = 0;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Send what we can of the current request (pingpong) or chunks (stream). */
static void pump_out(struct run *r, struct conn *c, uint64_t idx) {
    for (;;) {
        if (r->stream && c->sent - c->recvd >= r->window)
            break;
        if (!r->stream && c->off == r->size)
            break;
        ssize_t n = send(c->fd, r->payload + c->off, r->size - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(r, c);
            return;
        }
        c->off += (size_t)n;
        if (r->stream) {
            c->sent += (uint64_t)n;
            if (c->off == r->size)
                c->off = 0;
        }
    }
    int want = r->stream ? (c->sent - c->recvd < r->window) : (c->off < r->size);
    if (want != c->out_armed) {
        ep_set(r->ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), idx);
        c->out_armed = want;
    }
}

static void start_request(struct run *r, struct conn *c, uint64_t idx) {
    c->off = 0;
    c->got = 0;
    c->t0 = now_ns();
    pump_out(r, c, idx);
}

static void on_readable(struct run *r, struct conn *c, uint64_t idx) {
    ssize_t n = recv(c->fd, rbuf, RBUF, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_fail(r, c);
        return;
    }
    if (r->measuring)
        r->bytes += (uint64_t)n;
    if (r->stream) {
        c->recvd += (uint64_t)n;
        if (!c->out_armed)
            pump_out(r, c, idx);
        return;
    }
    c->got += (uint64_t)n;
    if (c->got >= r->size) {
        if (r->measuring) {
            r->roundtrips++;
            record(now_ns() - c->t0);
        }
        start_request(r, c, idx);
    }
}

static int client(int stream, const char *host, int port, int nconns, double seconds,
                  size_t size, double warmup, uint64_t window) {
    struct sockaddr_in sa = address(host, port);
    struct run r;
    memset(&r, 0, sizeof r);
    r.stream = stream;
    r.size = size;
    r.window = window < size ? size : window;
    r.payload = malloc(size);
    memset(r.payload, 'x', size);
    r.ep = epoll_create1(0);
    if (r.ep < 0)
        die("epoll_create1");
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = dial(&sa);
        conns[i].alive = 1;
        ep_set(r.ep, EPOLL_CTL_ADD, conns[i].fd, EPOLLIN, (uint64_t)i);
    }
    for (int i = 0; i < nconns; i++)
        start_request(&r, &conns[i], (uint64_t)i);

    uint64_t t_start = now_ns() + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_start + (uint64_t)(seconds * 1e9);
    double u0 = 0, s0 = 0, u1, s1;
    uint64_t t_measure = 0, t_stop;
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(r.ep, evs, MAX_EVENTS, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint64_t idx = evs[i].data.u64;
            struct conn *c = &conns[idx];
            if (!c->alive)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(&r, c, idx);
            if (c->alive && (evs[i].events & EPOLLOUT))
                pump_out(&r, c, idx);
        }
        uint64_t t = now_ns();
        if (!r.measuring && t >= t_start) {
            r.measuring = 1;
            t_measure = t;
            t_end = t + (uint64_t)(seconds * 1e9);
            cpu_seconds(&u0, &s0);
            printf("START\n");
            fflush(stdout);
        }
        if (r.measuring && t >= t_end) {
            t_stop = t;
            break;
        }
        if (r.errors == (uint64_t)nconns) {
            t_stop = t;
            break;
        }
    }
    cpu_seconds(&u1, &s1);
    double wall = t_measure ? (t_stop - t_measure) / 1e9 : 0;
    double cpu = (u1 - u0) + (s1 - s0);
    uint64_t total = r.roundtrips;
    printf("{\"mode\":\"%s\",\"conns\":%d,\"size\":%zu,\"seconds\":%.4f,"
           "\"roundtrips\":%llu,\"rps\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,"
           "\"bytes\":%llu,\"mb_s\":%.2f,\"cpu_user_s\":%.4f,\"cpu_sys_s\":%.4f,"
           "\"cpu_share\":%.4f,\"errors\":%llu}\n",
           stream ? "stream" : "pingpong", nconns, size, wall,
           (unsigned long long)total, wall > 0 ? total / wall : 0.0,
           stream ? 0.0 : percentile_us(total, 0.50),
           stream ? 0.0 : percentile_us(total, 0.99),
           (unsigned long long)r.bytes, wall > 0 ? r.bytes / wall / 1e6 : 0.0,
           u1 - u0, s1 - s0, wall > 0 ? cpu / wall : 0.0,
           (unsigned long long)r.errors);
    fflush(stdout);
    return r.errors == (uint64_t)nconns ? 1 : 0;
}

/* ------------------------------------------------------------------- server */

struct sconn {
    size_t pend_off, pend_len;
    char *pend;
};

static int server(const char *host, int port) {
    struct sockaddr_in sa = address(host, port);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (lfd < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind");
    if (listen(lfd, 1024) < 0)
        die("listen");
    nonblocking(lfd);
    int ep = epoll_create1(0);
    ep_set(ep, EPOLL_CTL_ADD, lfd, EPOLLIN, (uint64_t)lfd);
    size_t cap = 65536;
    struct sconn *conns = calloc(cap, sizeof *conns);
    struct epoll_event evs[MAX_EVENTS];
    printf("LISTENING %d\n", port);
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = (int)evs[i].data.u64;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if ((size_t)cfd >= cap) {
                        close(cfd);
                        continue;
                    }
                    nodelay(cfd);
                    memset(&conns[cfd], 0, sizeof conns[cfd]);
                    ep_set(ep, EPOLL_CTL_ADD, cfd, EPOLLIN, (uint64_t)cfd);
                }
                continue;
            }
            struct sconn *c = &conns[fd];
            if (c->pend_len) {
                /* Writable with a pending remainder: drain it, then read again. */
                ssize_t w = send(fd, c->pend + c->pend_off, c->pend_len, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                    goto closeit;
                if (w > 0) {
                    c->pend_off += (size_t)w;
                    c->pend_len -= (size_t)w;
                }
                if (!c->pend_len)
                    ep_set(ep, EPOLL_CTL_MOD, fd, EPOLLIN, (uint64_t)fd);
                continue;
            }
            ssize_t r = recv(fd, rbuf, RBUF, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            if (r <= 0)
                goto closeit;
            ssize_t w = send(fd, rbuf, (size_t)r, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    goto closeit;
                w = 0;
            }
            if (w < r) {
                c->pend = realloc(c->pend, RBUF);
                memcpy(c->pend, rbuf + w, (size_t)(r - w));
                c->pend_off = 0;
                c->pend_len = (size_t)(r - w);
                ep_set(ep, EPOLL_CTL_MOD, fd, EPOLLOUT, (uint64_t)fd);
            }
            continue;
        closeit:
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            free(c->pend);
            memset(c, 0, sizeof *c);
        }
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen pingpong HOST PORT CONNS SECONDS [SIZE] [WARMUP]\n"
            "       loadgen stream HOST PORT CONNS SECONDS [CHUNK] [WARMUP] [WINDOW]\n"
            "       loadgen server HOST PORT\n");
    exit(2);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 4)
        usage();
    const char *mode = argv[1], *host = argv[2];
    int port = atoi(argv[3]);
    if (!strcmp(mode, "server"))
        return server(host, port);
    int stream = !strcmp(mode, "stream");
    if ((!stream && strcmp(mode, "pingpong")) || argc < 6)
        usage();
    int nconns = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size_t size = argc > 6 ? (size_t)atol(argv[6]) : (stream ? 65536 : 64);
    double warmup = argc > 7 ? atof(argv[7]) : 0.3;
    uint64_t window = argc > 8 ? (uint64_t)atoll(argv[8]) : 1048576;
    if (nconns < 1 || seconds <= 0 || size < 1)
        usage();
    return client(stream, host, port, nconns, seconds, size, warmup, window);
}
