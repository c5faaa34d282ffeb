/*
 * imap_modifiers - the command parameters of RFC 7162 (CONDSTORE and
 * QRESYNC), from the parser's arguments into typed values:
 *
 *	SELECT / EXAMINE mailbox (CONDSTORE)
 *	SELECT / EXAMINE mailbox (QRESYNC (uidvalidity modseq [known-uids
 *	                                   [(known-seqs known-uids)]]))
 *	FETCH set items (CHANGEDSINCE modseq [VANISHED])
 *	STORE set (UNCHANGEDSINCE modseq) item flags
 *
 * Each parser takes the parenthesised list argument and returns 0, or -1
 * with *why set (for the BAD) and nothing to free.  Names are
 * case-insensitive; a parameter given twice, an unknown one, a missing or
 * extra value is an error.  Numbers follow RFC 7162's grammar:
 * mod-sequence-value is 1..2^63-1, mod-sequence-valzer (UNCHANGEDSINCE)
 * also 0, uidvalidity a nz-number.  Known UIDs and the sequence match data
 * are sequence sets without '*' or "$"; the two sets of the match data
 * must name as many numbers each.  Whether VANISHED is allowed (UID FETCH
 * with QRESYNC enabled, with CHANGEDSINCE) is the command's to check.
 */
#ifndef IMAP_MODIFIERS_H
#define IMAP_MODIFIERS_H

#include <stdint.h>

#include "imap_parse.h"

struct imap_select_params {
    int condstore;                      /* (CONDSTORE) */
    int qresync;                        /* (QRESYNC (...)): the fields below */
    uint32_t uidvalidity;
    uint64_t modseq;
    struct imap_seqset known_uids;      /* n == 0: not given */
    struct imap_seqset match_seqs, match_uids;   /* n == 0: not given */
};
int imap_select_params_parse(const struct imap_arg *arg, struct imap_select_params *out,
                             const char **why);
void imap_select_params_free(struct imap_select_params *p);

struct imap_fetch_mods {
    int changedsince;                   /* given: modseq holds it */
    uint64_t modseq;
    int vanished;
};
int imap_fetch_mods_parse(const struct imap_arg *arg, struct imap_fetch_mods *out,
                          const char **why);

int imap_store_mods_parse(const struct imap_arg *arg, uint64_t *unchangedsince,
                          const char **why);

/* A mod-sequence number atom: 0 .. 2^63-1 (1.. unless zero_ok); 0 / -1. */
int imap_modseq_parse(const struct imap_arg *a, int zero_ok, uint64_t *out);

#endif
