-- CreateEnum
CREATE TYPE "CleanupKind" AS ENUM ('login_sessions', 'task_sessions', 'chat_sessions', 'named_sessions');

-- CreateEnum
CREATE TYPE "CleanupTrigger" AS ENUM ('scheduled', 'manual');

-- CreateEnum
CREATE TYPE "CleanupRunStatus" AS ENUM ('queued', 'running', 'retrying', 'succeeded', 'failed');

-- CreateTable
CREATE TABLE "cleanup_runs" (
    "id" UUID NOT NULL,
    "job_id" VARCHAR(200) NOT NULL,
    "kind" "CleanupKind" NOT NULL,
    "trigger" "CleanupTrigger" NOT NULL,
    "status" "CleanupRunStatus" NOT NULL,
    "older_than_seconds" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "removed" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "details" JSONB,

    CONSTRAINT "cleanup_runs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox" (
    "seq" BIGSERIAL NOT NULL,
    "id" UUID NOT NULL,
    "type" VARCHAR(200) NOT NULL,
    "envelope" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE UNIQUE INDEX "cleanup_runs_job_id_key" ON "cleanup_runs"("job_id");

-- CreateIndex
CREATE INDEX "cleanup_runs_created_at_id_idx" ON "cleanup_runs"("created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "cleanup_runs_kind_created_at_id_idx" ON "cleanup_runs"("kind", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "cleanup_runs_kind_status_finished_at_idx" ON "cleanup_runs"("kind", "status", "finished_at");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_id_key" ON "outbox"("id");

-- Not expressible in the Prisma schema: the relay scans only unsent rows.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("seq") WHERE "sent_at" IS NULL;
