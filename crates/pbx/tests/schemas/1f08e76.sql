-- The schema of kentongan-pbx at commit 1f08e76, as its Store::open created it, with rows as that build wrote them.
CREATE TABLE IF NOT EXISTS users (
    extension TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    realm TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient);
CREATE TABLE IF NOT EXISTS cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    end_ms INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    disposition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bans (
    addr TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_calls (
    call_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    extension TEXT NOT NULL,
    contact TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    PRIMARY KEY (extension, contact)
) WITHOUT ROWID;
INSERT INTO users VALUES ('201','Front desk','5f4dcc3b5aa765d61d8327deb882cf99','a1d1b5fa27f6d4f0b8bb0c5f8a2e2a19d1e1c1f0b1a2b3c4d5e6f708192a3b4c','kantor.local');
INSERT INTO users VALUES ('202','','0cc175b9c0f1b6a831c399e269772661','ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb','kantor.local');
INSERT INTO registrations VALUES ('201','sip:201@10.0.0.5:5060','10.0.0.5:5060','udp',4102444800,'reg-1',7);
INSERT INTO messages VALUES (1,'202','201','text/plain',X'68616c6f',1000);
INSERT INTO cdr (call_id, caller, callee, start_ms, answer_ms, end_ms, duration_s, disposition) VALUES ('call-1','201','202',1000,1500,61500,60.0,'answered');
INSERT INTO live_calls VALUES ('call-2','202','201',70000,NULL,'ringing');
INSERT INTO bans VALUES ('203.0.113.9','auth failures',1000,4102444800);
