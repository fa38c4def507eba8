-- The delivery log: messages, their per-endpoint state and every attempt, each table
-- partitioned by day on its id. Ids sort by creation time byte for byte
-- (hookline_core::id), so a day is an id range and a lookup by id finds its partition
-- without another column. The "C" collation makes comparison bytewise, as the ids need.
-- Ids are unique on their own (random bits beside the time), so keys need no app id; every
-- query still names the app, which keeps tenants apart.
-- Records and payloads are JSON, the records without the fields the columns hold, stored
-- compressed by Hookline against a dictionary of their shape (codec.rs: a first byte names
-- the form).

CREATE TABLE messages (
    app_id        text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL,
    event_type    text COLLATE "C" NOT NULL,
    -- The endpoints the message was accepted for: pending until a destination row says
    -- otherwise, so accepting a message writes one row, not one per endpoint.
    endpoints     text[] COLLATE "C" NOT NULL,
    record        bytea NOT NULL,
    -- Its own column, so expunging it rewrites nothing else.
    payload       bytea NOT NULL,
    -- When the payload is expunged (Unix ms), if before the partition is dropped.
    payload_until bigint,
    PRIMARY KEY (app_id, id)
) PARTITION BY RANGE (id);

CREATE TABLE destinations (
    app_id       text COLLATE "C" NOT NULL,
    msg_id       text COLLATE "C" NOT NULL,
    endpoint_id  text COLLATE "C" NOT NULL,
    -- Svix's status numbers: success 0, pending 1, fail 2, sending 3.
    status       smallint NOT NULL,
    attempts     integer NOT NULL,
    next_attempt bigint,
    PRIMARY KEY (msg_id, endpoint_id)
) PARTITION BY RANGE (msg_id);

CREATE TABLE attempts (
    app_id      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    msg_id      text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    record      bytea NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
