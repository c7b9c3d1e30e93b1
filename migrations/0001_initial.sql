-- mentionbridge store, version 1. Migrations only ever add (CREATE, ALTER … ADD): a
-- replica still running the previous release keeps working on a migrated database.
--
-- The desk's records (tickets, cards, audit lines, failed jobs, a job's effect) are kept
-- as the JSON serde writes, in `json` columns: stored verbatim, so they read back exactly
-- (and `json`, unlike `jsonb`, keeps a "\u0000" a customer may have typed). Keys that may
-- hold NUL bytes (dedupe keys, inbound event ids, card message ids) are `bytea`.

CREATE TABLE tickets (
    id     bigint  PRIMARY KEY,
    closed boolean NOT NULL,
    body   json    NOT NULL
);
CREATE INDEX tickets_open ON tickets (id) WHERE NOT closed;

-- Every key a stored mention (or a published reply) is known by → its ticket.
CREATE TABLE dedupe (
    key    bytea  PRIMARY KEY,
    ticket bigint NOT NULL
);

CREATE TABLE cursors (
    source text  PRIMARY KEY,
    value  bytea NOT NULL
);

CREATE TABLE state (
    key   text  PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE cards (
    ticket  bigint NOT NULL,
    surface text   NOT NULL,
    body    json   NOT NULL,
    PRIMARY KEY (ticket, surface)
);

CREATE TABLE card_index (
    surface    text   NOT NULL,
    channel    bytea  NOT NULL,
    message_id bytea  NOT NULL,
    ticket     bigint NOT NULL,
    PRIMARY KEY (surface, channel, message_id)
);

-- The outbox. `attempts`, `not_before` and `last_error` are authoritative here; `body`
-- holds what never changes (the effect, when it was queued).
CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    ticket        bigint      NOT NULL,
    lane          text        NOT NULL,
    body          json        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    not_before    timestamptz,
    last_error    bytea,
    claimed_by    text,
    claimed_until timestamptz
);
CREATE INDEX outbox_lanes ON outbox (ticket, lane, id);

CREATE TABLE failed_jobs (
    id   bigint PRIMARY KEY,
    body json   NOT NULL
);

CREATE TABLE audit (
    seq    bigserial PRIMARY KEY,
    ticket bigint    NOT NULL,
    body   json      NOT NULL
);
CREATE INDEX audit_by_ticket ON audit (ticket, seq);

CREATE TABLE seen_events (
    source  bytea       NOT NULL,
    id      bytea       NOT NULL,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX seen_events_by_time ON seen_events (seen_at);

-- Named counters: `next_ticket` (the one ticket number sequence; its row is also what
-- serialises intake across replicas) and `cards_lost:<surface>`.
CREATE TABLE counters (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES ('next_ticket', 1);

CREATE TABLE leases (
    duty       text        PRIMARY KEY,
    holder     text        NOT NULL,
    token      bigint      NOT NULL,
    renewed_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
