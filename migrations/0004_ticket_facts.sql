-- mentionbridge store, version 4: beside each ticket, what the numbers of a window
-- (`/mentions stats`) need to know about it (its platform, stage, route, when it was
-- opened and last updated, and its first answer: when and by whom), as JSON of about a
-- hundred bytes, written by the binary with every write of the ticket. A window's numbers
-- read these through the index by the instant received and never the tickets' bodies.
-- Rows written before this version have none: the binary reads their body instead, and
-- fills the column the next time it writes the ticket.
ALTER TABLE tickets ADD COLUMN facts json;

-- The index by the instant received carries the facts, so a window's numbers are read
-- from the index alone where the rows are all-visible (older tickets, once vacuumed). It
-- takes the place of version 3's index on the same columns.
CREATE INDEX tickets_received_facts ON tickets (received_ns, id) INCLUDE (facts);
DROP INDEX IF EXISTS tickets_received;
