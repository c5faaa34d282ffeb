/*
 * db_user.c - users, addresses (primary and aliases), local domains and
 * groups in the LMDB environment, and the syntax of names and addresses.
 * See db.h for the interface and the top of db.c for the record layouts.
 *
 * Addresses are ASCII only for now (no SMTPUTF8): a dot-atom local part
 * without '%' and '!' (old source routing), '@', and a host name.  They are
 * stored lower-cased, local part included: mailcore treats local parts as
 * case-insensitive, as users expect, so Alice@X and alice@x are one mailbox.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_internal.h"

#define LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX 253 /* a host name in text form */
#define LABEL_MAX 63

/* ---- syntax ---- */

static int name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int db_valid_name(const char *name)
{
    size_t n;

    if (name == NULL || (n = strlen(name)) == 0 || n > DB_NAME_MAX)
        return 0;
    if (!isalnum((unsigned char)name[0]) || isupper((unsigned char)name[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)name[i]))
            return 0;
    return 1;
}

/* RFC 5322 atext without '%' and '!', which old relays read as routes. */
static int atext(int c)
{
    if (isalnum(c))
        return c < 0x80;
    return c != '\0' && strchr("#$&'*+-/=?^_`{|}~", c) != NULL;
}

static int valid_local(const char *s, size_t n)
{
    if (n == 0 || n > LOCAL_MAX || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!atext(c)) {
            return 0;
        }
    }
    return 1;
}

static int valid_domain(const char *s)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.' || c == '\0') {
            if (label == 0 || label > LABEL_MAX || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (c >= 0x80 || !(isalnum(c) || c == '-'))
            return 0;
        if (label == 0 && c == '-')
            return 0;
        label++;
    }
    return 1;
}

int db_valid_address(const char *addr)
{
    const char *at;
    size_t n;

    if (addr == NULL || (n = strlen(addr)) == 0 || n > DB_ADDR_MAX)
        return 0;
    if ((at = strrchr(addr, '@')) == NULL)
        return 0;
    return valid_local(addr, (size_t)(at - addr)) && valid_domain(at + 1);
}

int db_address_normalize(const char *addr, char *out, size_t outlen)
{
    size_t n;

    if (!db_valid_address(addr) || (n = strlen(addr)) >= outlen)
        return -1;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)addr[i]);
    return 0;
}

/* ---- users ---- */

static int user_decode(struct db_txn *txn, const MDB_val *v, struct db_user *u)
{
    struct dbx_dec d;

    dbx_dec_init(&d, v, DBX_RECORD_V1);
    u->id = dbx_dec_u32(&d);
    u->created = dbx_dec_u64(&d);
    dbx_dec_str(&d, u->address, sizeof u->address);
    dbx_dec_str(&d, u->hash, sizeof u->hash);
    if (dbx_dec_done(&d) != 0)
        return dbx_corrupt(txn, "users");
    return 0;
}

static int user_put(struct db_txn *txn, const struct db_user *u, unsigned flags)
{
    struct dbx_enc e;

    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, u->id);
    dbx_enc_u64(&e, u->created);
    dbx_enc_str(&e, u->address);
    dbx_enc_str(&e, u->hash);
    if (e.overflow)
        return db_txn_fail(txn, "user record too long");
    return dbx_put(txn, DBX_USERS, u->name, strlen(u->name), e.buf, e.len, flags);
}

int db_user_get(struct db_txn *txn, const char *name, struct db_user *u)
{
    MDB_val v;
    size_t n = strlen(name);
    int rc;

    if (n == 0 || n > DB_NAME_MAX)
        return dbx_note(txn, DB_NOTFOUND, "no user %.*s", DB_NAME_MAX, name);
    if ((rc = dbx_get(txn, DBX_USERS, name, n, &v)) == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no user %s", name);
    if (rc != 0)
        return rc;
    memset(u, 0, sizeof *u);
    memcpy(u->name, name, n + 1);
    return user_decode(txn, &v, u);
}

/* ---- addresses and domains ---- */

static int addr_decode(struct db_txn *txn, const MDB_val *v, int *primary,
                       char user[DB_NAME_MAX + 1])
{
    struct dbx_dec d;

    dbx_dec_init(&d, v, DBX_RECORD_V1);
    *primary = dbx_dec_u8(&d);
    dbx_dec_str(&d, user, DB_NAME_MAX + 1);
    if (dbx_dec_done(&d) != 0 || *primary > 1)
        return dbx_corrupt(txn, "addresses");
    return 0;
}

/* Look a normalized address up: 0 with user filled, DB_NOTFOUND, -1. */
static int addr_lookup(struct db_txn *txn, const char *addr, char user[DB_NAME_MAX + 1],
                       int *primary)
{
    MDB_val v;
    int rc, p;

    if ((rc = dbx_get(txn, DBX_ADDRESSES, addr, strlen(addr), &v)) != 0)
        return rc;
    if ((rc = addr_decode(txn, &v, &p, user)) != 0)
        return rc;
    if (primary)
        *primary = p;
    return 0;
}

/* Add delta to the count of addresses in addr's domain. */
static int domain_count(struct db_txn *txn, const char *addr, int delta)
{
    const char *dom = strrchr(addr, '@') + 1;
    struct dbx_enc e;
    struct dbx_dec d;
    MDB_val v;
    uint32_t count = 0;
    int rc;

    rc = dbx_get(txn, DBX_DOMAINS, dom, strlen(dom), &v);
    if (rc == 0) {
        dbx_dec_init(&d, &v, DBX_RECORD_V1);
        count = dbx_dec_u32(&d);
        if (dbx_dec_done(&d) != 0)
            return dbx_corrupt(txn, "domains");
    } else if (rc != DB_NOTFOUND) {
        return rc;
    }
    if (delta < 0 && count == 0)
        return dbx_corrupt(txn, "domains");
    count = delta < 0 ? count - 1 : count + 1;
    if (count == 0)
        return dbx_del(txn, DBX_DOMAINS, dom, strlen(dom));
    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u32(&e, count);
    return dbx_put(txn, DBX_DOMAINS, dom, strlen(dom), e.buf, e.len, 0);
}

/* addr is normalized; DB_EXISTS when it is taken. */
static int addr_add(struct db_txn *txn, const char *addr, const char *user, int primary)
{
    struct dbx_enc e;
    int rc;

    dbx_enc_init(&e, DBX_RECORD_V1);
    dbx_enc_u8(&e, primary ? 1 : 0);
    dbx_enc_str(&e, user);
    if (e.overflow)
        return db_txn_fail(txn, "address record too long");
    rc = dbx_put(txn, DBX_ADDRESSES, addr, strlen(addr), e.buf, e.len, MDB_NOOVERWRITE);
    if (rc == DB_EXISTS)
        return dbx_note(txn, DB_EXISTS, "address %s exists", addr);
    if (rc != 0)
        return rc;
    return domain_count(txn, addr, +1);
}

int db_address_resolve(struct db_txn *txn, const char *addr, char user[DB_NAME_MAX + 1])
{
    char norm[DB_ADDR_MAX + 1], *plus, *at;
    int rc;

    if (db_address_normalize(addr, norm, sizeof norm) != 0)
        return dbx_note(txn, DB_NOTFOUND, "invalid address");
    /* Exact: a primary address or an alias. */
    if ((rc = addr_lookup(txn, norm, user, NULL)) != DB_NOTFOUND)
        return rc;
    /* Plus-addressing: drop "+tag" from the local part and try again. */
    at = strrchr(norm, '@');
    plus = memchr(norm, '+', (size_t)(at - norm));
    if (plus != NULL && plus != norm) {
        memmove(plus, at, strlen(at) + 1);
        if ((rc = addr_lookup(txn, norm, user, NULL)) != DB_NOTFOUND)
            return rc;
    }
    return dbx_note(txn, DB_NOTFOUND, "no such address %s", norm);
}

int db_alias_add(struct db_txn *txn, const char *addr, const char *user)
{
    char norm[DB_ADDR_MAX + 1];
    struct db_user u;
    int rc;

    if (db_address_normalize(addr, norm, sizeof norm) != 0)
        return db_txn_fail(txn, "invalid address: %.*s", DB_ADDR_MAX, addr);
    if ((rc = db_user_get(txn, user, &u)) != 0)
        return rc;
    return addr_add(txn, norm, u.name, 0);
}

int db_alias_del(struct db_txn *txn, const char *addr)
{
    char norm[DB_ADDR_MAX + 1], user[DB_NAME_MAX + 1];
    int rc, primary;

    if (db_address_normalize(addr, norm, sizeof norm) != 0)
        return dbx_note(txn, DB_NOTFOUND, "no alias %.*s", DB_ADDR_MAX, addr);
    rc = addr_lookup(txn, norm, user, &primary);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no alias %s", norm);
    if (rc != 0)
        return rc;
    if (primary)
        return db_txn_fail(txn, "%s is the primary address of %s, not an alias", norm, user);
    if ((rc = dbx_del(txn, DBX_ADDRESSES, norm, strlen(norm))) != 0)
        return rc;
    return domain_count(txn, norm, -1);
}

struct addr_each {
    int (*cb)(const char *addr, const char *user, int primary, void *arg);
    void *arg;
};

static int addr_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct addr_each *ae = arg;
    char addr[DB_ADDR_MAX + 1], user[DB_NAME_MAX + 1];
    int primary, rc;

    (void)del;
    if (dbx_key_str(k, 0, k->mv_size, addr, sizeof addr) != 0)
        return dbx_corrupt(txn, "addresses");
    if ((rc = addr_decode(txn, v, &primary, user)) != 0)
        return rc;
    return ae->cb(addr, user, primary, ae->arg);
}

int db_address_foreach(struct db_txn *txn,
                       int (*cb)(const char *addr, const char *user, int primary, void *arg),
                       void *arg)
{
    struct addr_each ae = {cb, arg};

    return dbx_scan(txn, DBX_ADDRESSES, NULL, 0, addr_each_fn, &ae);
}

int db_domain_is_local(struct db_txn *txn, const char *domain)
{
    char dom[DOMAIN_MAX + 1];
    size_t n = strlen(domain);
    MDB_val v;
    int rc;

    if (n == 0 || n > DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++)
        dom[i] = (char)tolower((unsigned char)domain[i]);
    rc = dbx_get(txn, DBX_DOMAINS, dom, n, &v);
    if (rc == DB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : -1;
}

/* ---- users, continued ---- */

static const struct {
    const char *name;
    uint32_t special;
} std_mailboxes[] = {
    {"INBOX", DB_SPECIAL_NONE},  {"Sent", DB_SPECIAL_SENT}, {"Drafts", DB_SPECIAL_DRAFTS},
    {"Trash", DB_SPECIAL_TRASH}, {"Junk", DB_SPECIAL_JUNK},
};

int db_user_add(struct db_txn *txn, struct db_user *u)
{
    char norm[DB_ADDR_MAX + 1];
    MDB_val v;
    int rc;

    if (!db_valid_name(u->name))
        return db_txn_fail(txn,
                           "invalid user name \"%.*s\": use 1-%d of a-z 0-9 . _ -, "
                           "starting with a letter or digit",
                           DB_NAME_MAX, u->name, DB_NAME_MAX);
    if (db_address_normalize(u->address, norm, sizeof norm) != 0)
        return db_txn_fail(txn, "invalid address \"%.*s\"", DB_ADDR_MAX, u->address);
    if (memchr(u->hash, '\0', sizeof u->hash) == NULL)
        return db_txn_fail(txn, "password hash too long");
    if ((rc = dbx_get(txn, DBX_USERS, u->name, strlen(u->name), &v)) == 0)
        return dbx_note(txn, DB_EXISTS, "user %s exists", u->name);
    if (rc != DB_NOTFOUND)
        return rc;
    if ((rc = dbx_get(txn, DBX_ADDRESSES, norm, strlen(norm), &v)) == 0)
        return dbx_note(txn, DB_EXISTS, "address %s exists", norm);
    if (rc != DB_NOTFOUND)
        return rc;

    if ((rc = dbx_counter_next(txn, "next_user_id", &u->id)) != 0)
        return rc;
    u->created = (uint64_t)time(NULL);
    memcpy(u->address, norm, strlen(norm) + 1);
    if ((rc = user_put(txn, u, MDB_NOOVERWRITE)) != 0 ||
        (rc = addr_add(txn, u->address, u->name, 1)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof std_mailboxes / sizeof std_mailboxes[0]; i++) {
        struct db_mailbox m;

        rc = db_mailbox_create(txn, u->name, std_mailboxes[i].name, std_mailboxes[i].special, &m);
        if (rc == 0)    /* subscribed, so clients that show only those see them */
            rc = db_subscription_set(txn, u->name, std_mailboxes[i].name, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int db_user_by_login(struct db_txn *txn, const char *login, struct db_user *u)
{
    char key[DB_ADDR_MAX + 1], user[DB_NAME_MAX + 1];
    size_t n = strlen(login);
    int rc;

    if (strchr(login, '@') != NULL) {
        if (db_address_normalize(login, key, sizeof key) != 0)
            return dbx_note(txn, DB_NOTFOUND, "invalid login");
        rc = addr_lookup(txn, key, user, NULL);
        if (rc == DB_NOTFOUND)
            return dbx_note(txn, DB_NOTFOUND, "no user with address %s", key);
        if (rc != 0)
            return rc;
        return db_user_get(txn, user, u);
    }
    if (n == 0 || n > DB_NAME_MAX)
        return dbx_note(txn, DB_NOTFOUND, "invalid login");
    for (size_t i = 0; i <= n; i++)
        key[i] = (char)tolower((unsigned char)login[i]);
    if (!db_valid_name(key))
        return dbx_note(txn, DB_NOTFOUND, "invalid login");
    return db_user_get(txn, key, u);
}

int db_user_set_hash(struct db_txn *txn, const char *name, const char *hash)
{
    struct db_user u;
    size_t n = strlen(hash);
    int rc;

    if (n > DB_HASH_MAX)
        return db_txn_fail(txn, "password hash too long");
    if ((rc = db_user_get(txn, name, &u)) != 0)
        return rc;
    memcpy(u.hash, hash, n + 1);
    return user_put(txn, &u, 0);
}

struct user_each {
    int (*cb)(const struct db_user *u, void *arg);
    void *arg;
};

static int user_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    struct user_each *ue = arg;
    struct db_user u;
    int rc;

    (void)del;
    memset(&u, 0, sizeof u);
    if (dbx_key_str(k, 0, k->mv_size, u.name, sizeof u.name) != 0)
        return dbx_corrupt(txn, "users");
    if ((rc = user_decode(txn, v, &u)) != 0)
        return rc;
    return ue->cb(&u, ue->arg);
}

int db_user_foreach(struct db_txn *txn, int (*cb)(const struct db_user *u, void *arg), void *arg)
{
    struct user_each ue = {cb, arg};

    return dbx_scan(txn, DBX_USERS, NULL, 0, user_each_fn, &ue);
}

/* Deletes every address (primary and aliases) owned by the user. */
static int del_addr_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    char addr[DB_ADDR_MAX + 1], user[DB_NAME_MAX + 1];
    int primary, rc;

    if ((rc = addr_decode(txn, v, &primary, user)) != 0)
        return rc;
    if (strcmp(user, arg) != 0)
        return 0;
    if (dbx_key_str(k, 0, k->mv_size, addr, sizeof addr) != 0 || strchr(addr, '@') == NULL)
        return dbx_corrupt(txn, "addresses");
    *del = 1;
    return domain_count(txn, addr, -1);
}

/* Deletes every group membership of the user (key "group NUL user"). */
static int del_member_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del,
                         void *arg)
{
    const char *key = k->mv_data, *nul = memchr(key, '\0', k->mv_size);
    size_t ulen = strlen(arg);

    (void)v;
    if (nul == NULL)
        return dbx_corrupt(txn, "members");
    if ((size_t)(key + k->mv_size - (nul + 1)) == ulen && memcmp(nul + 1, arg, ulen) == 0)
        *del = 1;
    return 0;
}

int db_user_del(struct db_txn *txn, const char *name,
                void (*file_dead)(uint64_t file_id, void *arg), void *arg)
{
    struct db_user u;
    int rc;

    if ((rc = db_user_get(txn, name, &u)) != 0)
        return rc;
    if ((rc = dbx_del(txn, DBX_USERS, u.name, strlen(u.name))) != 0 ||
        (rc = dbx_scan(txn, DBX_ADDRESSES, NULL, 0, del_addr_fn, u.name)) != 0 ||
        (rc = dbx_scan(txn, DBX_MEMBERS, NULL, 0, del_member_fn, u.name)) != 0 ||
        (rc = dbx_quota_del_user(txn, u.name)) != 0)
        return rc;
    return dbx_mailboxes_del_user(txn, u.name, file_dead, arg);
}

/* ---- groups ---- */

static const unsigned char empty_record[1] = {DBX_RECORD_V1};

int db_group_add(struct db_txn *txn, const char *group)
{
    int rc;

    if (!db_valid_name(group))
        return db_txn_fail(txn, "invalid group name \"%.*s\"", DB_NAME_MAX, group);
    rc = dbx_put(txn, DBX_GROUPS, group, strlen(group), empty_record, sizeof empty_record,
                 MDB_NOOVERWRITE);
    if (rc == DB_EXISTS)
        return dbx_note(txn, DB_EXISTS, "group %s exists", group);
    return rc;
}

static int del_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del, void *arg)
{
    (void)txn, (void)k, (void)v, (void)arg;
    *del = 1;
    return 0;
}

int db_group_del(struct db_txn *txn, const char *group)
{
    char prefix[DB_NAME_MAX + 2];
    size_t n = strlen(group);
    int rc;

    if (n == 0 || n > DB_NAME_MAX)
        return dbx_note(txn, DB_NOTFOUND, "no group %.*s", DB_NAME_MAX, group);
    rc = dbx_del(txn, DBX_GROUPS, group, n);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no group %s", group);
    if (rc != 0)
        return rc;
    memcpy(prefix, group, n);
    prefix[n] = '\0';
    return dbx_scan(txn, DBX_MEMBERS, prefix, n + 1, del_fn, NULL);
}

int db_group_exists(struct db_txn *txn, const char *group)
{
    MDB_val v;
    size_t n = strlen(group);
    int rc;

    if (n == 0 || n > DB_NAME_MAX)
        return dbx_note(txn, DB_NOTFOUND, "no group %.*s", DB_NAME_MAX, group);
    rc = dbx_get(txn, DBX_GROUPS, group, n, &v);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "no group %s", group);
    return rc;
}

static size_t member_key(char *key, size_t len, const char *group, const char *user)
{
    if (strlen(group) > DB_NAME_MAX || strlen(user) > DB_NAME_MAX)
        return 0;
    return dbx_key2(key, len, group, user);
}

int db_group_member_add(struct db_txn *txn, const char *group, const char *user)
{
    char key[2 * DB_NAME_MAX + 2];
    struct db_user u;
    size_t klen;
    int rc;

    if ((rc = db_group_exists(txn, group)) != 0 || (rc = db_user_get(txn, user, &u)) != 0)
        return rc;
    if ((klen = member_key(key, sizeof key, group, user)) == 0)
        return db_txn_fail(txn, "name too long");
    rc = dbx_put(txn, DBX_MEMBERS, key, klen, empty_record, sizeof empty_record, MDB_NOOVERWRITE);
    if (rc == DB_EXISTS)
        return dbx_note(txn, DB_EXISTS, "%s is already in group %s", user, group);
    return rc;
}

int db_group_member_del(struct db_txn *txn, const char *group, const char *user)
{
    char key[2 * DB_NAME_MAX + 2];
    size_t klen = member_key(key, sizeof key, group, user);
    int rc;

    if (klen == 0)
        return dbx_note(txn, DB_NOTFOUND, "no such member");
    rc = dbx_del(txn, DBX_MEMBERS, key, klen);
    if (rc == DB_NOTFOUND)
        return dbx_note(txn, DB_NOTFOUND, "%s is not in group %s", user, group);
    return rc;
}

int db_group_is_member(struct db_txn *txn, const char *group, const char *user)
{
    char key[2 * DB_NAME_MAX + 2];
    size_t klen = member_key(key, sizeof key, group, user);
    MDB_val v;
    int rc;

    if (klen == 0)
        return 0;
    rc = dbx_get(txn, DBX_MEMBERS, key, klen, &v);
    if (rc == DB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : -1;
}

struct group_each {
    int (*cb)(const char *group, const char *member, void *arg);
    void *arg;
    char group[DB_NAME_MAX + 2];
    size_t glen;
};

static int member_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del,
                          void *arg)
{
    struct group_each *ge = arg;
    char user[DB_NAME_MAX + 1];

    (void)v, (void)del;
    if (dbx_key_str(k, ge->glen + 1, k->mv_size - (ge->glen + 1), user, sizeof user) != 0)
        return dbx_corrupt(txn, "members");
    return ge->cb(ge->group, user, ge->arg);
}

static int group_each_fn(struct db_txn *txn, const MDB_val *k, const MDB_val *v, int *del,
                         void *arg)
{
    struct group_each *ge = arg;
    int rc;

    (void)v, (void)del;
    if (dbx_key_str(k, 0, k->mv_size, ge->group, DB_NAME_MAX + 1) != 0)
        return dbx_corrupt(txn, "groups");
    ge->glen = k->mv_size;
    if ((rc = ge->cb(ge->group, NULL, ge->arg)) != 0)
        return rc;
    /* The prefix is "group NUL"; the NUL is already there after the name. */
    return dbx_scan(txn, DBX_MEMBERS, ge->group, ge->glen + 1, member_each_fn, ge);
}

int db_group_foreach(struct db_txn *txn,
                     int (*cb)(const char *group, const char *member, void *arg), void *arg)
{
    struct group_each ge = {.cb = cb, .arg = arg};

    return dbx_scan(txn, DBX_GROUPS, NULL, 0, group_each_fn, &ge);
}
