-- CreateTable
CREATE TABLE "login_sessions" (
    "id" VARCHAR(128) NOT NULL,
    "user_id" VARCHAR(128) NOT NULL,
    "ip_address" VARCHAR(64) NOT NULL,
    "last_ip_address" VARCHAR(64) NOT NULL,
    "ip_changes" INTEGER NOT NULL DEFAULT 0,
    "user_agent" VARCHAR(1024) NOT NULL,
    "device_type" VARCHAR(16) NOT NULL,
    "browser" VARCHAR(64) NOT NULL,
    "os" VARCHAR(64) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_seen_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "request_count" INTEGER NOT NULL DEFAULT 0,
    "chat_interactions" INTEGER NOT NULL DEFAULT 0,
    "ended_at" TIMESTAMPTZ(3),
    "end_reason" VARCHAR(16),

    CONSTRAINT "login_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "login_violations" (
    "id" BIGSERIAL NOT NULL,
    "session_id" VARCHAR(128) NOT NULL,
    "user_id" VARCHAR(128) NOT NULL,
    "reason" VARCHAR(32) NOT NULL,
    "detail" VARCHAR(500) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "login_violations_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "processed_events" (
    "id" UUID NOT NULL,
    "processed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "processed_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "login_sessions_user_id_created_at_id_idx" ON "login_sessions"("user_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "login_violations_reason_idx" ON "login_violations"("reason");

-- CreateIndex
CREATE INDEX "processed_events_processed_at_idx" ON "processed_events"("processed_at");

-- Not expressible in the Prisma schema: cleanup and the concurrency limit scan only sessions still open.
CREATE INDEX "login_sessions_open_last_seen_idx" ON "login_sessions"("last_seen_at") WHERE "ended_at" IS NULL;
CREATE INDEX "login_sessions_open_created_idx" ON "login_sessions"("created_at") WHERE "ended_at" IS NULL;
CREATE INDEX "login_sessions_open_user_idx" ON "login_sessions"("user_id", "created_at") WHERE "ended_at" IS NULL;
