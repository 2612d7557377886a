-- CreateEnum
CREATE TYPE "TaskType" AS ENUM ('image_analysis', 'scenario_generation', 'video_generation', 'finalize_short', 'save_scenario', 'content_analysis', 'data_extraction', 'scraping');

-- CreateEnum
CREATE TYPE "TaskSessionStatus" AS ENUM ('active', 'completed', 'failed');

-- CreateEnum
CREATE TYPE "TaskOutcome" AS ENUM ('completed', 'failed', 'cancelled', 'removed');

-- CreateTable
CREATE TABLE "task_sessions" (
    "id" BIGSERIAL NOT NULL,
    "task_id" VARCHAR(128) NOT NULL,
    "short_id" VARCHAR(64) NOT NULL,
    "task_type" "TaskType" NOT NULL,
    "user_id" VARCHAR(128),
    "status" "TaskSessionStatus" NOT NULL DEFAULT 'active',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "finished_tasks" (
    "task_id" VARCHAR(128) NOT NULL,
    "task_type" "TaskType" NOT NULL,
    "outcome" "TaskOutcome" NOT NULL,
    "finished_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "finished_tasks_pkey" PRIMARY KEY ("task_id")
);

-- CreateTable
CREATE TABLE "scenario_saves" (
    "short_id" VARCHAR(64) NOT NULL,
    "saved_at" TIMESTAMPTZ(3) NOT NULL,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "scenario_saves_pkey" PRIMARY KEY ("short_id")
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
CREATE UNIQUE INDEX "task_sessions_task_id_key" ON "task_sessions"("task_id");

-- CreateIndex
CREATE INDEX "task_sessions_short_id_created_at_id_idx" ON "task_sessions"("short_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "task_sessions_task_type_idx" ON "task_sessions"("task_type");

-- CreateIndex
CREATE INDEX "task_sessions_status_idx" ON "task_sessions"("status");

-- CreateIndex
CREATE INDEX "task_sessions_created_at_idx" ON "task_sessions"("created_at");

-- CreateIndex
CREATE INDEX "task_sessions_user_id_idx" ON "task_sessions"("user_id");

-- CreateIndex
CREATE INDEX "finished_tasks_finished_at_idx" ON "finished_tasks"("finished_at");

-- CreateIndex
CREATE INDEX "scenario_saves_recorded_at_idx" ON "scenario_saves"("recorded_at");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_id_key" ON "outbox"("id");

-- Not expressible in the Prisma schema: cleanup walks only finished sessions, oldest first, in batches.
CREATE INDEX "task_sessions_finished_created_at_idx" ON "task_sessions"("created_at", "id") WHERE "status" <> 'active';

-- Not expressible in the Prisma schema: the relay scans only unsent rows.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("seq") WHERE "sent_at" IS NULL;
