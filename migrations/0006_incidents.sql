-- mentionbridge store, version 6: incidents, the tickets of one storm shown on one card
-- and answered together. An incident's record is the JSON serde writes (its summary, its
-- cards, its bulk answer); its members are tickets whose body names it, listed in
-- `incident_members` for paging through them. Incident numbers have their own counter.
CREATE TABLE incidents (
    id   bigint PRIMARY KEY,
    body json   NOT NULL
);

CREATE TABLE incident_members (
    incident bigint NOT NULL,
    ticket   bigint NOT NULL,
    PRIMARY KEY (incident, ticket)
);

INSERT INTO counters (name, value) VALUES ('next_incident', 1) ON CONFLICT (name) DO NOTHING;
