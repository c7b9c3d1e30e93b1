-- mentionbridge store, version 7: what agents wrote about a person (`/mentions note`),
-- by the author key intake uses (the network and the handle), oldest first by `id`. The
-- note (who wrote it, when, the text) is the JSON serde writes. Never sent to the person;
-- an erasure removes every row of their key.
CREATE TABLE person_notes (
    id         bigserial PRIMARY KEY,
    author_key text      NOT NULL,
    body       json      NOT NULL
);

CREATE INDEX person_notes_by_author ON person_notes (author_key, id);
