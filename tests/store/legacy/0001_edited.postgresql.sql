--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


--
-- Name: counters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.counters (
    name character varying(64) NOT NULL,
    value integer NOT NULL
);


--
-- Name: processes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.processes (
    id character varying(100) NOT NULL,
    hostname character varying(255) NOT NULL,
    pid integer NOT NULL,
    role character varying(16) NOT NULL,
    started_at timestamp with time zone NOT NULL,
    heartbeat_at timestamp with time zone NOT NULL
);


--
-- Name: runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.runs (
    id character varying(40) NOT NULL,
    task_id character varying(40) NOT NULL,
    owner character varying(200) NOT NULL,
    status character varying(16) NOT NULL,
    trigger character varying(16) NOT NULL,
    fire_time timestamp with time zone,
    attempt integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    not_before timestamp with time zone,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    duration_ms integer,
    output json,
    summary text,
    error text,
    event json,
    lease_owner character varying(100),
    lease_expires_at timestamp with time zone
);


--
-- Name: step_results; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.step_results (
    run_id character varying(40) NOT NULL,
    step_index integer NOT NULL,
    step_id character varying(64) NOT NULL,
    tool character varying(200) NOT NULL,
    status character varying(16) NOT NULL,
    args json,
    output json,
    error text,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    duration_ms integer,
    attempts integer NOT NULL
);


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    id character varying(40) NOT NULL,
    owner character varying(200) NOT NULL,
    name character varying(200) NOT NULL,
    description text NOT NULL,
    spec json NOT NULL,
    timezone character varying(64) NOT NULL,
    trigger_kind character varying(16) NOT NULL,
    event_name character varying(100),
    enabled boolean NOT NULL,
    status character varying(16) NOT NULL,
    revision integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    next_fire_at timestamp with time zone,
    last_attempt_at timestamp with time zone,
    last_run_at timestamp with time zone,
    last_run_status character varying(16),
    last_summary text,
    last_error text,
    run_count integer NOT NULL,
    consecutive_failures integer NOT NULL
);


--
-- Data for Name: alembic_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alembic_version VALUES ('0001');


--
-- Data for Name: counters; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.counters VALUES ('tasks_revision', 3);


--
-- Data for Name: processes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.processes VALUES ('host:4242:abc', 'host', 4242, 'worker', '2026-11-23 09:00:00+00', '2026-11-23 09:03:00+00');


--
-- Data for Name: runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.runs VALUES ('run_01kaqm1n80000000000000000a', 'tsk_01kaqm1n80000000000000000a', 'local', 'succeeded', 'schedule', '2026-11-23 09:00:00+00', 1, '2026-11-23 09:00:00+00', NULL, '2026-11-23 09:00:00+00', '2026-11-23 09:02:00+00', 5, '{"n": 1}', 'ok', NULL, 'null', NULL, NULL);
INSERT INTO public.runs VALUES ('run_01kaqm1n80000000000000000b', 'tsk_01kaqm1n80000000000000000b', 'local', 'failed', 'schedule', '2026-11-23 09:01:00+00', 1, '2026-11-23 09:01:00+00', NULL, '2026-11-23 09:01:00+00', '2026-11-23 09:02:00+00', 5, 'null', NULL, 'boom', 'null', NULL, NULL);
INSERT INTO public.runs VALUES ('run_01kaqm1n80000000000000000c', 'tsk_01kaqm1n80000000000000000a', 'local', 'running', 'schedule', '2026-11-23 09:03:00+00', 1, '2026-11-23 09:03:00+00', NULL, '2026-11-23 09:03:00+00', NULL, NULL, 'null', NULL, NULL, 'null', 'host:4242:abc', '2026-11-23 09:04:00+00');
INSERT INTO public.runs VALUES ('run_01kaqm1n80000000000000000d', 'tsk_01kaqm1n80000000000000000b', 'local', 'queued', 'schedule', '2026-11-23 09:01:00+00', 2, '2026-11-23 09:01:00+00', '2026-11-23 09:02:00+00', NULL, NULL, NULL, 'null', NULL, NULL, 'null', NULL, NULL);
INSERT INTO public.runs VALUES ('run_01kaqm1n80000000000000000e', 'tsk_01kaqm1n80000000000000000c', 'local', 'succeeded', 'event', NULL, 1, '2026-11-23 09:05:00+00', NULL, '2026-11-23 09:05:00+00', '2026-11-23 09:02:00+00', 5, 'null', NULL, NULL, '{"version": "1.2"}', NULL, NULL);


--
-- Data for Name: step_results; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.step_results VALUES ('run_01kaqm1n80000000000000000a', 0, 'pause', 'wait', 'succeeded', '{"seconds": 0}', '{"waited_s": 0}', NULL, '2026-11-23 09:00:00+00', '2026-11-23 09:00:00+00', 0, 1);
INSERT INTO public.step_results VALUES ('run_01kaqm1n80000000000000000b', 0, 'pause', 'wait', 'failed', '{"seconds": 0}', 'null', 'boom', '2026-11-23 09:00:00+00', '2026-11-23 09:00:00+00', 0, 1);


--
-- Data for Name: tasks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tasks VALUES ('tsk_01kaqm1n80000000000000000a', 'local', 'Morning digest', 'Morning digest (kept)', '{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"cron": "0 9 * * *"}}', 'Europe/Berlin', 'cron', NULL, true, 'active', 1, '2026-11-23 09:00:00+00', '2026-11-23 09:00:00+00', '2026-11-23 09:59:00+00', NULL, '2026-11-23 09:01:00+00', 'succeeded', 'ok', NULL, 2, 0);
INSERT INTO public.tasks VALUES ('tsk_01kaqm1n80000000000000000b', 'local', 'Ping', 'Ping (kept)', '{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"every": "1m"}}', 'Europe/Berlin', 'every', NULL, false, 'paused', 1, '2026-11-23 09:00:00+00', '2026-11-23 09:00:00+00', NULL, NULL, NULL, 'failed', NULL, 'boom', 1, 1);
INSERT INTO public.tasks VALUES ('tsk_01kaqm1n80000000000000000c', 'local', 'On deploy', 'On deploy (kept)', '{"steps": [{"id": "pause", "tool": "wait", "args": {"seconds": 0}}], "trigger": {"event": "deploy"}}', 'Europe/Berlin', 'event', 'deploy', true, 'active', 1, '2026-11-23 09:00:00+00', '2026-11-23 09:00:00+00', NULL, NULL, NULL, NULL, NULL, NULL, 0, 0);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: counters counters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.counters
    ADD CONSTRAINT counters_pkey PRIMARY KEY (name);


--
-- Name: processes processes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.processes
    ADD CONSTRAINT processes_pkey PRIMARY KEY (id);


--
-- Name: runs runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);


--
-- Name: step_results step_results_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.step_results
    ADD CONSTRAINT step_results_pkey PRIMARY KEY (run_id, step_index);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: runs uq_runs_fire; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT uq_runs_fire UNIQUE (task_id, fire_time, attempt);


--
-- Name: ix_processes_heartbeat_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_processes_heartbeat_at ON public.processes USING btree (heartbeat_at);


--
-- Name: ix_runs_lease_expires_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_runs_lease_expires_at ON public.runs USING btree (lease_expires_at);


--
-- Name: ix_runs_owner_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_runs_owner_id ON public.runs USING btree (owner, id);


--
-- Name: ix_runs_status_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_runs_status_id ON public.runs USING btree (status, id);


--
-- Name: ix_runs_task_id_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_runs_task_id_id ON public.runs USING btree (task_id, id);


--
-- Name: ix_tasks_event_name; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_tasks_event_name ON public.tasks USING btree (event_name);


--
-- Name: ix_tasks_next_fire; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_tasks_next_fire ON public.tasks USING btree (status, next_fire_at);


--
-- Name: ix_tasks_owner_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_tasks_owner_id ON public.tasks USING btree (owner, id);


--
-- PostgreSQL database dump complete
--


