// Package store is imchannel's domain: conversations, messages, status
// timelines, the outbox and media, persisted in one bbolt file.
//
// Bucket tree (schema 5; keys → values, "+" is concatenation, ids are
// 26-character ULID strings, t8 is a big-endian uint64 of unix nanoseconds):
//
//	meta/
//	  schema_version → uint64          written by migrations
//	  health         → RFC 3339 time   last /healthz probe
//	  last_backup    → {at, size} JSON last checked backup (audit.go)
//	  last_download  → {at, size} JSON last whole /admin/backup stream
//	counters/
//	  name           → uint64          messages, conversations, failed_sends,
//	                                   in:YYYY-MM-DD, out:YYYY-MM-DD, dup:<provider>,
//	                                   quarantined,
//	                                   in@YYYY-MM-DDTHH:MM, out@… (UTC quarter
//	                                   hours), biz:<business> (conversations)
//	conversations/
//	  convID         → Conversation JSON
//	conv_key/
//	  business+"/"+customer → convID   one conversation per pair of numbers
//	conv_activity/
//	  t8(lastActivity)+convID → flags byte (1 unanswered, 2 failed sends) +
//	                                   "customer business folded-name" (schema 5);
//	                                   scanned backwards: most recent first
//	conv_msgs/
//	  convID+msgID   → ""              a thread in time order
//	messages/
//	  msgID          → Message JSON
//	msg_words/
//	  word+0x00+ULID(16 bytes) → ""    text index: every folded word of a
//	                                   message's text and caption (search.go)
//	ext/                               ns is 0x00 for inbound ids, 0x01 for
//	                                   outbound ids (ours, and the provider's
//	                                   for our sends): the two never meet
//	  provider+ns+externalID → msgID   idempotency and report lookup; aliases
//	                                   too; "" for consumed actions (reactions,
//	                                   deletions); a CM MO's dedupeId too
//	pending/
//	  provider+ns+externalID+0x00+ULID → Pending JSON
//	                                   replies, reports, reactions and deletions
//	                                   waiting for a message that has not
//	                                   arrived: reports under 0x01, the rest
//	                                   under 0x00
//	outbox/
//	  t8(due)+msgID  → ""              delivery queue ordered by due time
//	outbox_state/
//	  msgID          → OutboxState JSON attempts, next try, last error
//	media/
//	  mediaID        → Media JSON      state, source, sha256
//	media_thumbs/
//	  mediaID        → preview bytes   a cached image's ~480 px preview (schema 5)
//	media_queue/
//	  t8(next try)+mediaID → ""        fetch queue
//	media_token/
//	  token          → mediaID         public capability URLs for hosted media
//	blobs/
//	  sha256(32 bytes) → Blob JSON     size, chunk count, chunk size, reference
//	                                   count (= cached media naming it), type
//	chunks/
//	  sha256(32)+uint32(index) → 256 KiB of bytes (the last chunk shorter);
//	                                   chunk i holds bytes [i*256Ki, (i+1)*256Ki)
//	tokens/
//	  sha256(token)  → expiry t8 + fingerprint
//	                                   bearer tokens issued by tokenByAkSk, bound
//	                                   to the app key and secret that issued them
//	audit/
//	  t8+seq         → audit line JSON erasures and other operator actions
//	quarantine/                        (schema 2)
//	  ULID           → Quarantined JSON provider items that could not be
//	                                   understood: raw, reason, route, times
//	quarantine_hash/
//	  sha256(route+0x00+raw) → ULID    one entry per distinct item
//	events/                            (schema 3, events.go)
//	  u64(seq)       → EventRecord JSON append-only log of changes, written in
//	                                   the transaction of the change; seq from
//	                                   the bucket's NextSequence, never reused
//	event_conv/
//	  convID+u64(seq) → ""             a conversation's events, for erasure
//	relay/
//	  target name    → RelayState JSON a relay target's cursor and counters
//	relay_quarantine/
//	  target+0x00+u64(seq) → RelayQuarantined JSON events a target refused (4xx)
//
// meta also holds events_purged → uint64, the highest sequence removed by age.
//
// Buckets whose keys are appended (ULIDs, times, sequences) fill their pages
// beyond bbolt's half when they split (appendedFill in buckets.go).
//
// Exported methods own their transaction; unexported helpers take a *Tx.
// All writes go through Update, which batches concurrent writers into one
// fsynced commit (group commit).
package store
