PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE users (
    extension TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    realm TEXT NOT NULL
, rights TEXT);
INSERT INTO users VALUES('201','Front desk','baf44a1c011e0f92692c82632b4c9ca6','3044ed08133af5dbd0f715ac68805bbeb5d3d8c129046f842b8a52c5d231e422','kantor.local',NULL);
INSERT INTO users VALUES('202','','6f4600d3dfbee0d23b858e265c7181d3','e200b9de1eb7aaf061045e4668dc537fd89741e5ab775918d3687d8ef027a4d4','kantor.local',NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    end_ms INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    disposition TEXT NOT NULL
, trunk TEXT, number TEXT, class TEXT, cost INTEGER, caller_name TEXT NOT NULL DEFAULT '');
INSERT INTO cdr VALUES(1,'call-1','201','202',1000,1500,61500,60.0,'answered',NULL,NULL,NULL,NULL,'Front desk');
CREATE TABLE bans (
    addr TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO bans VALUES('203.0.113.9','auth failures',1000,4102444800);
CREATE TABLE live_calls (
    call_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    state TEXT NOT NULL
);
CREATE TABLE admins (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
    created INTEGER NOT NULL
);
CREATE TABLE registrations (
    extension TEXT NOT NULL,
    contact TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    PRIMARY KEY (extension, contact)
) WITHOUT ROWID;
INSERT INTO registrations VALUES('201','sip:201@10.0.0.5:5060','10.0.0.5:5060','udp',4102444800,'reg-1',7);
CREATE TABLE conference_members (
    member INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    extension TEXT NOT NULL,
    admin INTEGER NOT NULL,
    muted INTEGER NOT NULL,
    talking INTEGER NOT NULL,
    joined_ms INTEGER NOT NULL
);
CREATE TABLE conference_rooms (
    room TEXT PRIMARY KEY,
    locked INTEGER NOT NULL
);
CREATE TABLE conference_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    action TEXT NOT NULL,
    member INTEGER
);
CREATE TABLE extension_settings (
    extension TEXT PRIMARY KEY,
    forward_all TEXT,
    forward_busy TEXT,
    forward_no_answer TEXT,
    dnd INTEGER NOT NULL DEFAULT 0,
    call_waiting_off INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE trunk_state (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    expires_at INTEGER,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE trunk_health (
    name TEXT PRIMARY KEY,
    reachable INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    channels_in_use INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE voicemail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox TEXT NOT NULL,
    caller TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('new', 'old')),
    path TEXT NOT NULL
);
CREATE TABLE voicemail_pins (
    extension TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    path TEXT NOT NULL
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('cdr',1);
CREATE INDEX messages_recipient ON messages (recipient);
CREATE INDEX voicemail_mailbox ON voicemail (mailbox);
CREATE INDEX recordings_start ON recordings (start_ms);
COMMIT;
