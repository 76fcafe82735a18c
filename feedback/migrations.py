"""Versioned schema migrations of the ground-truth store. Append, never edit an applied one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "events, rejected events and the ground-truth view",
        """
        CREATE TABLE inferences (
            event_id     VARCHAR PRIMARY KEY,
            task         VARCHAR NOT NULL,
            input        VARCHAR NOT NULL,
            output       VARCHAR NOT NULL,
            base_model   VARCHAR NOT NULL,
            adapter_id   VARCHAR,
            latency_ms   DOUBLE,
            mean_logprob DOUBLE,
            origin       VARCHAR NOT NULL,
            metadata     VARCHAR,
            occurred_at  TIMESTAMP NOT NULL,
            ingested_at  TIMESTAMP NOT NULL
        );
        CREATE TABLE feedback (
            event_id      VARCHAR PRIMARY KEY,
            task          VARCHAR NOT NULL,
            inference_id  VARCHAR NOT NULL,
            signal        VARCHAR NOT NULL,
            rating        INTEGER,
            edited_output VARCHAR,
            user_id       VARCHAR,
            occurred_at   TIMESTAMP NOT NULL,
            ingested_at   TIMESTAMP NOT NULL
        );
        CREATE TABLE corrections (
            event_id         VARCHAR PRIMARY KEY,
            task             VARCHAR NOT NULL,
            inference_id     VARCHAR NOT NULL,
            corrected_output VARCHAR NOT NULL,
            reviewer         VARCHAR NOT NULL,
            note             VARCHAR,
            occurred_at      TIMESTAMP NOT NULL,
            ingested_at      TIMESTAMP NOT NULL
        );
        CREATE TABLE rejected_events (
            rejection_id VARCHAR PRIMARY KEY,
            source       VARCHAR NOT NULL,
            event_type   VARCHAR,
            task         VARCHAR,
            event_id     VARCHAR,
            reason       VARCHAR NOT NULL,
            raw          BLOB NOT NULL,
            received_at  TIMESTAMP NOT NULL
        );
        CREATE TABLE api_tokens (
            token_hash  VARCHAR PRIMARY KEY,
            role        VARCHAR NOT NULL,
            name        VARCHAR NOT NULL,
            created_at  TIMESTAMP NOT NULL,
            revoked_at  TIMESTAMP
        );
        -- Corrections by reviewers and edits by users are both corrected outputs; the latest
        -- one of an inference wins (ties broken by event id, so the answer is deterministic).
        CREATE VIEW corrected_outputs AS
        SELECT inference_id, output, source, event_id, occurred_at FROM (
            SELECT inference_id, output, source, event_id, occurred_at,
                   row_number() OVER (
                       PARTITION BY inference_id ORDER BY occurred_at DESC, event_id DESC
                   ) AS rank
            FROM (
                SELECT inference_id, corrected_output AS output, 'correction' AS source,
                       event_id, occurred_at
                FROM corrections
                UNION ALL
                SELECT inference_id, edited_output, 'edit', event_id, occurred_at
                FROM feedback WHERE signal = 'edited'
            )
        ) WHERE rank = 1;
        -- Ground truth: a corrected output, else an output a user accepted, else an imported
        -- example. Corrections that arrived before their inference join once it arrives.
        CREATE VIEW ground_truth AS
        SELECT i.event_id AS inference_id, i.task, i.input,
               coalesce(c.output, i.output) AS output,
               CASE WHEN c.source IS NOT NULL THEN c.source
                    WHEN i.origin = 'import' THEN 'import'
                    ELSE 'accepted' END AS source,
               i.output AS model_output, i.adapter_id,
               greatest(i.occurred_at, coalesce(c.occurred_at, i.occurred_at)) AS updated_at
        FROM inferences i
        LEFT JOIN corrected_outputs c ON c.inference_id = i.event_id
        WHERE c.inference_id IS NOT NULL
           OR i.origin = 'import'
           OR i.event_id IN (SELECT inference_id FROM feedback WHERE signal = 'accepted');
        """,
    ),
    (
        2,
        "tasks, snapshots with lineage, regression set, adapters, champions, cycles, audit",
        """
        CREATE TABLE tasks (
            name        VARCHAR PRIMARY KEY,
            spec        VARCHAR NOT NULL,   -- JSON of training.tasks.TaskSpec
            created_at  TIMESTAMP NOT NULL,
            updated_at  TIMESTAMP NOT NULL
        );
        CREATE TABLE snapshots (
            snapshot_id   VARCHAR PRIMARY KEY,  -- content hash of its examples
            task          VARCHAR NOT NULL,
            created_at    TIMESTAMP NOT NULL,
            path          VARCHAR NOT NULL,     -- Parquet file the trainer reads
            n_train       INTEGER NOT NULL,
            n_eval        INTEGER NOT NULL,
            n_regression  INTEGER NOT NULL,
            n_new         INTEGER NOT NULL,
            stats         VARCHAR NOT NULL      -- JSON: dropped, duplicates, conflicts
        );
        CREATE TABLE snapshot_examples (
            snapshot_id   VARCHAR NOT NULL,
            inference_id  VARCHAR NOT NULL,
            split         VARCHAR NOT NULL,     -- train | eval
            is_new        BOOLEAN NOT NULL,
            is_regression BOOLEAN NOT NULL,
            source        VARCHAR NOT NULL,     -- correction | edit | accepted | import
            output_hash   VARCHAR NOT NULL
        );
        CREATE TABLE regression_examples (
            task          VARCHAR NOT NULL,
            inference_id  VARCHAR NOT NULL,
            added_at      TIMESTAMP NOT NULL,
            reason        VARCHAR NOT NULL,
            PRIMARY KEY (task, inference_id)
        );
        CREATE TABLE adapters (
            adapter_id      VARCHAR PRIMARY KEY,  -- content hash of the weights
            task            VARCHAR NOT NULL,
            base_model      VARCHAR NOT NULL,
            parent_adapter  VARCHAR,
            snapshot_id     VARCHAR NOT NULL,
            path            VARCHAR NOT NULL,
            metadata        VARCHAR NOT NULL,     -- JSON: hyperparameters, training metrics
            created_at      TIMESTAMP NOT NULL
        );
        CREATE TABLE champion_history (
            task        VARCHAR NOT NULL,
            adapter_id  VARCHAR,                  -- NULL: the base model
            since       TIMESTAMP NOT NULL,
            until       TIMESTAMP,                -- NULL: still the champion
            actor       VARCHAR NOT NULL,
            action      VARCHAR NOT NULL,         -- promote | approve | rollback
            reason      VARCHAR
        );
        CREATE TABLE cycles (
            cycle_id          VARCHAR PRIMARY KEY,
            task              VARCHAR NOT NULL,
            state             VARCHAR NOT NULL,   -- snapshot|training|evaluating|decided|failed
            trigger           VARCHAR NOT NULL,
            started_at        TIMESTAMP NOT NULL,
            updated_at        TIMESTAMP NOT NULL,
            lease_expires_at  TIMESTAMP,
            snapshot_id       VARCHAR,
            adapter_id        VARCHAR,
            verdict           VARCHAR,            -- promote | reject | await_approval
            decision          VARCHAR,            -- JSON: reasons and evidence
            progress          VARCHAR,            -- JSON: step, total, phase
            error             VARCHAR
        );
        CREATE TABLE audit_log (
            logged_at TIMESTAMP NOT NULL,
            actor     VARCHAR NOT NULL,
            action   VARCHAR NOT NULL,
            task     VARCHAR,
            details  VARCHAR
        );
        """,
    ),
    (
        3,
        "review queue: one lease per item, and what the reviewer did",
        """
        CREATE TABLE review_items (
            inference_id      VARCHAR PRIMARY KEY,
            task              VARCHAR NOT NULL,
            reviewer          VARCHAR NOT NULL,   -- who holds (or held) the lease
            leased_at         TIMESTAMP NOT NULL,
            lease_expires_at  TIMESTAMP NOT NULL,
            done_at           TIMESTAMP,          -- NULL: not reviewed yet
            outcome           VARCHAR             -- approved | corrected
        );
        """,
    ),
    (
        4,
        "review leases belong to a token; token names are unique",
        """
        -- The token that holds (or held) the lease: its id (services.control_plane.tokens).
        -- Leases taken before this migration belong to no token and simply expire.
        ALTER TABLE review_items ADD COLUMN holder VARCHAR NOT NULL DEFAULT '';
        -- Token names identify actors in the audit log, so no two tokens share one. A store
        -- that already has duplicates keeps the oldest name and suffixes the others with the
        -- start of their hash. (DuckDB cannot add a unique index after updates in the same
        -- transaction, so the table is rebuilt.)
        CREATE TABLE api_tokens_unique_names (
            token_hash  VARCHAR PRIMARY KEY,
            role        VARCHAR NOT NULL,
            name        VARCHAR NOT NULL UNIQUE,
            created_at  TIMESTAMP NOT NULL,
            revoked_at  TIMESTAMP
        );
        INSERT INTO api_tokens_unique_names
        SELECT token_hash, role,
               CASE WHEN row_number() OVER (PARTITION BY name ORDER BY created_at, token_hash) = 1
                    THEN name ELSE name || '-' || substr(token_hash, 1, 8) END,
               created_at, revoked_at
        FROM api_tokens;
        DROP TABLE api_tokens;
        ALTER TABLE api_tokens_unique_names RENAME TO api_tokens;
        """,
    ),
    (
        5,
        "erasure: keyed hashes of erased ids, tainted adapters, retraining owed to an erasure",
        """
        -- The key of the erased-id hashes (feedback.erased_ids): made on the first erasure.
        CREATE TABLE erasure_keys (
            key         VARCHAR NOT NULL,
            created_at  TIMESTAMP NOT NULL
        );
        -- What is left of an erased event: a keyed hash of its id, so a replay is refused.
        CREATE TABLE erased_events (
            id_hash    VARCHAR PRIMARY KEY,
            erased_at  TIMESTAMP NOT NULL
        );
        -- Adapters trained or evaluated on erased data (or warm-started from one that was).
        CREATE TABLE adapter_taints (
            adapter_id  VARCHAR PRIMARY KEY,
            tainted_at  TIMESTAMP NOT NULL,
            erasure_id  VARCHAR NOT NULL
        );
        -- Tasks whose tainted champion waits for a retraining cycle (erasure policy retrain).
        CREATE TABLE pending_retrains (
            task          VARCHAR PRIMARY KEY,
            requested_at  TIMESTAMP NOT NULL,
            erasure_id    VARCHAR NOT NULL
        );
        """,
    ),
    (
        6,
        "erasure: the snapshots each erasure cut, so a cycle already training on one is caught",
        """
        -- A cycle that took its snapshot before an erasure trains on the erased examples;
        -- its candidate is tainted when it arrives (training.taint.taint_on_arrival).
        CREATE TABLE erased_snapshots (
            snapshot_id  VARCHAR NOT NULL,
            erasure_id   VARCHAR NOT NULL,
            erased_at    TIMESTAMP NOT NULL,
            PRIMARY KEY (snapshot_id, erasure_id)
        );
        """,
    ),
    (
        7,
        "live guard: canaries (a candidate on a fraction of live traffic) and drift alerts",
        """
        -- One row per canary; ended_at IS NULL marks the task's running one (at most one).
        CREATE TABLE canaries (
            task         VARCHAR NOT NULL,
            adapter_id   VARCHAR NOT NULL,
            champion_id  VARCHAR,
            policy       VARCHAR NOT NULL,
            started_at   TIMESTAMP NOT NULL,
            ended_at     TIMESTAMP,
            outcome      VARCHAR,
            actor        VARCHAR,
            evidence     VARCHAR,
            PRIMARY KEY (task, started_at)
        );
        CREATE TABLE live_alerts (
            raised_at    TIMESTAMP NOT NULL,
            task         VARCHAR NOT NULL,
            adapter_id   VARCHAR,
            baseline     VARCHAR NOT NULL,
            action       VARCHAR NOT NULL,
            evidence     VARCHAR NOT NULL
        );
        """,
    ),
]
