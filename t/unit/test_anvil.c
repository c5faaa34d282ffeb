/* test_anvil.c - shared connection counts: sums across regions of one
 * service, isolation between services, cleanup of a dead process's region,
 * a bounded table that never fills up with addresses seen once. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mailcore/anvil.h"

static struct anvil *map_new(int *fd)
{
    char err[256];
    struct anvil *a;

    *fd = anvil_create(err, sizeof err);
    CHECK(*fd >= 0);
    a = anvil_map(*fd, err, sizeof err);
    CHECK(a != NULL);
    return a;
}

static void test_anvil_counts_sum_over_processes_of_a_service(void)
{
    int fd;
    struct anvil *master = map_new(&fd);
    struct anvil_key ip, other;
    char err[256];
    pid_t pid;
    int status;

    anvil_key_addr(&ip, "192.0.2.1");
    anvil_key_addr(&other, "::1");
    anvil_region_assign(master, 0, 1);      /* smtpd worker 0 */
    anvil_region_assign(master, 1, 1);      /* smtpd worker 1 */
    anvil_region_assign(master, 2, 2);      /* imapd */
    pid = fork();
    if (pid == 0) {
        struct anvil *w1 = anvil_map(fd, err, sizeof err);
        anvil_use_region(w1, 1);
        anvil_inc(w1, &ip);
        anvil_inc(w1, &ip);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    struct anvil *w0 = anvil_map(fd, err, sizeof err), *imap = anvil_map(fd, err, sizeof err);
    anvil_use_region(w0, 0);
    anvil_use_region(imap, 2);
    CHECK_INT(anvil_inc(w0, &ip), 3);
    CHECK_INT(anvil_count(w0, &other), 0);
    CHECK_INT(anvil_inc(imap, &ip), 1);     /* another service counts apart */
    anvil_dec(w0, &ip);
    CHECK_INT(anvil_count(w0, &ip), 2);
    /* Worker 1 died: master clears its region, its connections vanish. */
    anvil_region_release(master, 1);
    CHECK_INT(anvil_count(w0, &ip), 0);
    anvil_unmap(w0);
    anvil_unmap(imap);
    anvil_unmap(master);
    close(fd);
}

static void test_anvil_table_reuses_slots_of_departed_addresses(void)
{
    int fd;
    struct anvil *a = map_new(&fd);
    struct anvil_key k;
    char addr[64];

    anvil_region_assign(a, 5, 1);
    anvil_use_region(a, 5);
    for (int i = 0; i < 20 * ANVIL_SLOTS; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        CHECK_INT(anvil_key_addr(&k, addr), 0);
        if (anvil_inc(a, &k) != 1) {
            CHECK(!"inc failed");
            break;
        }
        anvil_dec(a, &k);
    }
    anvil_key_name(&k, "alice");
    CHECK_INT(anvil_inc(a, &k), 1);
    CHECK_INT(anvil_key_addr(&k, "not an address"), -1);
    anvil_unmap(a);
    close(fd);
}

static void test_anvil_total_key_and_names_differ(void)
{
    struct anvil_key t, n1, n2;

    anvil_key_total(&t);
    anvil_key_name(&n1, "alice");
    anvil_key_name(&n2, "bob");
    CHECK(memcmp(&t, &n1, sizeof t) != 0);
    CHECK(memcmp(&n1, &n2, sizeof t) != 0);
}

int main(void)
{
    RUN(test_anvil_counts_sum_over_processes_of_a_service);
    RUN(test_anvil_table_reuses_slots_of_departed_addresses);
    RUN(test_anvil_total_key_and_names_differ);
    return check_done();
}
