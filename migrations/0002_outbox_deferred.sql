-- mentionbridge store, version 2: the outbox's deferred jobs (a send failed for now and
-- waits for `not_before`) in an index of their own, so a sender with room to spare finds
-- when the next one comes due without reading the queue.
CREATE INDEX outbox_deferred ON outbox (not_before) WHERE not_before IS NOT NULL;
