BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0001');
CREATE TABLE counters (
	name VARCHAR(64) NOT NULL, 
	value INTEGER NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "counters" VALUES('tasks_revision',3);
CREATE TABLE processes (
	id VARCHAR(100) NOT NULL, 
	hostname VARCHAR(255) NOT NULL, 
	pid INTEGER NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	started_at DATETIME NOT NULL, 
	heartbeat_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "processes" VALUES('host:4242:abc','host',4242,'worker','2026-11-23 09:00:00.000000','2026-11-23 09:03:00.000000');
CREATE TABLE runs (
	id VARCHAR(40) NOT NULL, 
	task_id VARCHAR(40) NOT NULL, 
	owner VARCHAR(200) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	"trigger" VARCHAR(16) NOT NULL, 
	fire_time DATETIME, 
	attempt INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	not_before DATETIME, 
	started_at DATETIME, 
	finished_at DATETIME, 
	duration_ms INTEGER, 
	output JSON, 
	summary TEXT, 
	error TEXT, 
	event JSON, 
	lease_owner VARCHAR(100), 
	lease_expires_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_runs_fire UNIQUE (task_id, fire_time, attempt)
);
INSERT INTO "runs" VALUES('run_01kaqm1n80000000000000000a','tsk_01kaqm1n80000000000000000a','local','succeeded','schedule','2026-11-23 09:00:00.000000',1,'2026-11-23 09:00:00.000000',NULL,'2026-11-23 09:00:00.000000','2026-11-23 09:02:00.000000',5,'{"n": 1}','ok',NULL,'null',NULL,NULL);
INSERT INTO "runs" VALUES('run_01kaqm1n80000000000000000b','tsk_01kaqm1n80000000000000000b','local','failed','schedule','2026-11-23 09:01:00.000000',1,'2026-11-23 09:01:00.000000',NULL,'2026-11-23 09:01:00.000000','2026-11-23 09:02:00.000000',5,'null',NULL,'boom','null',NULL,NULL);
INSERT INTO "runs" VALUES('run_01kaqm1n80000000000000000c','tsk_01kaqm1n80000000000000000a','local','running','schedule','2026-11-23 09:03:00.000000',1,'2026-11-23 09:03:00.000000',NULL,'2026-11-23 09:03:00.000000',NULL,NULL,'null',NULL,NULL,'null','host:4242:abc','2026-11-23 09:04:00.000000');
INSERT INTO "runs" VALUES('run_01kaqm1n80000000000000000d','tsk_01kaqm1n80000000000000000b','local','queued','schedule','2026-11-23 09:01:00.000000',2,'2026-11-23 09:01:00.000000','2026-11-23 09:02:00.000000',NULL,NULL,NULL,'null',NULL,NULL,'null',NULL,NULL);
INSERT INTO "runs" VALUES('run_01kaqm1n80000000000000000e','tsk_01kaqm1n80000000000000000c','local','succeeded','event',NULL,1,'2026-11-23 09:05:00.000000',NULL,'2026-11-23 09:05:00.000000','2026-11-23 09:02:00.000000',5,'null',NULL,NULL,'{"version": "1.2"}',NULL,NULL);
CREATE TABLE step_results (
	run_id VARCHAR(40) NOT NULL, 
	step_index INTEGER NOT NULL, 
	step_id VARCHAR(64) NOT NULL, 
	tool VARCHAR(200) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	args JSON, 
	output JSON, 
	error TEXT, 
	started_at DATETIME, 
	finished_at DATETIME, 
	duration_ms INTEGER, 
	attempts INTEGER NOT NULL, 
	PRIMARY KEY (run_id, step_index)
);
INSERT INTO "step_results" VALUES('run_01kaqm1n80000000000000000a',0,'pause','wait','succeeded','{"seconds": 0}','{"waited_s": 0}',NULL,'2026-11-23 09:00:00.000000','2026-11-23 09:00:00.000000',0,1);
INSERT INTO "step_results" VALUES('run_01kaqm1n80000000000000000b',0,'pause','wait','failed','{"seconds": 0}','null','boom','2026-11-23 09:00:00.000000','2026-11-23 09:00:00.000000',0,1);
CREATE TABLE tasks (
	id VARCHAR(40) NOT NULL, 
	owner VARCHAR(200) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	description TEXT NOT NULL, 
	spec JSON NOT NULL, 
	timezone VARCHAR(64) NOT NULL, 
	trigger_kind VARCHAR(16) NOT NULL, 
	event_name VARCHAR(100), 
	enabled BOOLEAN NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	revision INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	next_fire_at DATETIME, 
	last_attempt_at DATETIME, 
	last_run_at DATETIME, 
	last_run_status VARCHAR(16), 
	last_summary TEXT, 
	last_error TEXT, 
	run_count INTEGER NOT NULL, 
	consecutive_failures INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "tasks" VALUES('tsk_01kaqm1n80000000000000000a','local','Morning digest','Morning digest (kept)','{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"cron": "0 9 * * *"}}','Europe/Berlin','cron',NULL,1,'active',1,'2026-11-23 09:00:00.000000','2026-11-23 09:00:00.000000','2026-11-23 09:59:00.000000',NULL,'2026-11-23 09:01:00.000000','succeeded','ok',NULL,2,0);
INSERT INTO "tasks" VALUES('tsk_01kaqm1n80000000000000000b','local','Ping','Ping (kept)','{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"every": "1m"}}','Europe/Berlin','every',NULL,0,'paused',1,'2026-11-23 09:00:00.000000','2026-11-23 09:00:00.000000',NULL,NULL,NULL,'failed',NULL,'boom',1,1);
INSERT INTO "tasks" VALUES('tsk_01kaqm1n80000000000000000c','local','On deploy','On deploy (kept)','{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"event": "deploy"}}','Europe/Berlin','event','deploy',1,'active',1,'2026-11-23 09:00:00.000000','2026-11-23 09:00:00.000000',NULL,NULL,NULL,NULL,NULL,NULL,0,0);
CREATE INDEX ix_processes_heartbeat_at ON processes (heartbeat_at);
CREATE INDEX ix_runs_lease_expires_at ON runs (lease_expires_at);
CREATE INDEX ix_runs_owner_id ON runs (owner, id);
CREATE INDEX ix_runs_status_id ON runs (status, id);
CREATE INDEX ix_runs_task_id_id ON runs (task_id, id);
CREATE INDEX ix_tasks_event_name ON tasks (event_name);
CREATE INDEX ix_tasks_next_fire ON tasks (status, next_fire_at);
CREATE INDEX ix_tasks_owner_id ON tasks (owner, id);
COMMIT;
