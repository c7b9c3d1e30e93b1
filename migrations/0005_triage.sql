-- mentionbridge store, version 5: what triage reads. Each ticket row gains who wrote it
-- (`author_key`: the network and the handle, as `domain::priority::author_key` writes
-- it), so intake finds the same person's latest tickets (repeat contact) through an
-- index, inside its transaction; and its priority's points on arrival
-- (`priority_score`), which the open list sorts by with the instant received and the
-- first answer, read from the index of open tickets alone. The binary writes both with
-- every write of a ticket. Rows already here get their author from their body if they
-- are open or were received in the last 90 days (the longest repeat window); their
-- points stay NULL (read as 0: tickets from before priorities are normal).

ALTER TABLE tickets ADD COLUMN author_key text;
ALTER TABLE tickets ADD COLUMN priority_score integer;

UPDATE tickets SET author_key = translate(
        CASE WHEN body->'mention'->>'platform' = 'other'
                  AND body->'mention'->>'network' IS NOT NULL
             THEN 'other:' || btrim(body->'mention'->>'network')
             ELSE body->'mention'->>'platform'
        END
        || '/' || ltrim(btrim(body->'mention'->'author'->>'handle'), '@'),
        'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
    WHERE NOT closed
       OR received_ns >= (extract(epoch FROM now()) - 90 * 86400)::bigint * 1000000000;

CREATE INDEX tickets_author ON tickets (author_key, id) WHERE author_key IS NOT NULL;
CREATE INDEX tickets_open_priority ON tickets (id)
    INCLUDE (received_ns, priority_score, first_answer_ns) WHERE NOT closed;
