-- mentionbridge store, version 3: what keeps the desk's steady costs flat as its history
-- grows. Each ticket row gains the facts its indexes are keyed by, as bigint nanoseconds
-- since the epoch (so comparisons are as exact as the desk's own; timestamptz keeps
-- microseconds): when the desk received it, when the scheduler must next look at it (open
-- tickets only), when an agent first answered it, and its route while nobody has answered
-- it (ignored tickets aside). The binary fills them for the rows already there once, right
-- after this migration (recorded as state `ticket_index`), with the counters behind
-- `/metrics` (`counters` rows named `tally:…`) and the first responses per route.

ALTER TABLE tickets ADD COLUMN received_ns bigint;
ALTER TABLE tickets ADD COLUMN due_ns bigint;
ALTER TABLE tickets ADD COLUMN first_answer_ns bigint;
ALTER TABLE tickets ADD COLUMN unanswered_route text;

CREATE INDEX tickets_received ON tickets (received_ns, id);
CREATE INDEX tickets_due ON tickets (due_ns, id) WHERE due_ns IS NOT NULL;
CREATE INDEX tickets_first_answer ON tickets (first_answer_ns) WHERE first_answer_ns IS NOT NULL;
CREATE INDEX tickets_unanswered ON tickets (unanswered_route, received_ns)
    WHERE unanswered_route IS NOT NULL;

-- Answered tickets (ignored ones aside) per route and first response in whole seconds,
-- rounded up: how many answered within a target is a sum over at most that many rows.
CREATE TABLE first_response_waits (
    route   text   NOT NULL,
    seconds bigint NOT NULL,
    tickets bigint NOT NULL,
    PRIMARY KEY (route, seconds)
);
