/*
 * db_v2.c - for tests only: make a mailcore LMDB environment look as
 * schema version 2 made it (before the quotas database): the quotas
 * database is dropped and the meta version set to 2.  Everything else in
 * version 3 is laid out exactly as in version 2 (see db.c), so this is a
 * faithful version-2 environment with the current data.
 *
 *	db_v2 DATA_DIRECTORY
 *
 * Exit 0 done, 1 failed (with a reason on stderr), 2 usage.
 */
#include <lmdb.h>
#include <stdio.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "db_v2: %s: %s\n", what, mdb_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, quotas;
    unsigned char two[4] = {2, 0, 0, 0};
    MDB_val k = {7, "version"}, v = {sizeof two, two};
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: db_v2 DATA_DIRECTORY\n");
        return 2;
    }
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 64)) != 0 ||
        (rc = mdb_env_set_mapsize(env, (size_t)64 << 20)) != 0 ||
        (rc = mdb_env_open(env, argv[1], MDB_NOTLS, 0600)) != 0)
        return fail(argv[1], rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        return fail("begin", rc);
    if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0)
        return fail("meta", rc);
    if ((rc = mdb_dbi_open(txn, "quotas", 0, &quotas)) != 0)
        return fail("quotas", rc);
    if ((rc = mdb_drop(txn, quotas, 1)) != 0)
        return fail("drop quotas", rc);
    if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
        return fail("version", rc);
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fail("commit", rc);
    mdb_env_close(env);
    return 0;
}
