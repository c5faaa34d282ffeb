/*
 * smtp_rcpt.c - which recipients the SMTP server accepts.
 *
 * Local recipients only, in this order: the exact address, an alias, then
 * plus-addressing (db_address_resolve() does all three).  A recipient is
 * local when its domain is email_domain or a domain some user or alias has.
 * Anything that could make us a relay is refused with 550 5.7.1: a foreign
 * domain, an address literal, a source route, a quoted local part, and the
 * %- and !-hacks (user%other@local).  "postmaster" without a domain is
 * postmaster@email_domain (RFC 5321 4.5.1).
 *
 * A local user over the storage quota, or whom the SIZE= declared at MAIL
 * would take over it, gets 452 4.2.2 here (quota.h): refusing at RCPT is
 * how one recipient of several can be told no while the rest get the mail.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailcore/conf.h"
#include "mailcore/db.h"
#include "mailcore/quota.h"
#include "mailcore/service.h"
#include "smtp_internal.h"

struct lookup {
    const char *addr;       /* normalized */
    const char *domain;
    const char *email_domain;
    uint64_t quota_default;
    uint64_t declared;      /* MAIL FROM SIZE=, 0 when absent */
    int local;
    int found;
    int full;               /* over quota, or would be with the declared size */
    struct smtp_rcpt *r;
};

static int tx_lookup(struct db_txn *txn, void *arg)
{
    struct lookup *l = arg;
    struct db_mailbox inbox;
    int r;

    l->local = strcmp(l->domain, l->email_domain) == 0 || db_domain_is_local(txn, l->domain) == 1;
    if (!l->local)
        return 0;
    r = db_address_resolve(txn, l->addr, l->r->user);
    if (r == DB_NOTFOUND)
        return 0;
    if (r != 0)
        return r;
    r = db_mailbox_get(txn, l->r->user, "INBOX", &inbox);
    if (r == DB_NOTFOUND)
        return 0;
    if (r != 0)
        return r;
    l->r->mailbox = inbox.id;
    l->found = 1;
    {
        struct quota q;

        if ((r = quota_get(txn, l->r->user, l->quota_default, &q)) != 0)
            return r;
        l->full = quota_is_over(&q) || quota_would_exceed(&q, l->declared);
    }
    return 0;
}

enum smtp_reply_id smtp_rcpt_check(struct smtp_session *s, const struct smtp_path *p,
                                   struct smtp_rcpt *r)
{
    const struct conf *c = s->srv->svc->conf;
    char addr[SMTP_PATH_MAX + 64], err[256];
    struct lookup l = {0};
    const char *at;

    snprintf(r->addr, sizeof r->addr, "%s", p->addr);
    if (strchr(p->addr, '@') == NULL)       /* <postmaster> */
        snprintf(addr, sizeof addr, "%s@%s", p->addr, conf_str(c, "email_domain"));
    else
        snprintf(addr, sizeof addr, "%s", p->addr);
    at = strrchr(addr, '@');
    if (p->source_route || p->quoted || at[1] == '[' ||
        memchr(addr, '%', (size_t)(at - addr)) || memchr(addr, '!', (size_t)(at - addr)))
        return SMTP_R_RELAY_DENIED;
    for (char *q = addr; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    l.addr = addr;
    l.domain = at + 1;
    l.email_domain = conf_str(c, "email_domain");
    l.r = r;
    l.quota_default = conf_uint(c, "user_quota");
    l.declared = s->params.size;
    if (db_read(s->srv->svc->db, tx_lookup, &l, err, sizeof err) != 0) {
        log_warn("recipient lookup for <%s>: %s", addr, err);
        return SMTP_R_TEMP_LOOKUP;
    }
    if (!l.local)
        return s->srv->policy.local_recipients_only ? SMTP_R_RELAY_DENIED : SMTP_R_RCPT_OK;
    if (!l.found)
        return SMTP_R_USER_UNKNOWN;
    return l.full ? SMTP_R_MAILBOX_FULL : SMTP_R_RCPT_OK;
}
