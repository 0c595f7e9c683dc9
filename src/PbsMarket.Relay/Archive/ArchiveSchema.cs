using Npgsql;

namespace PbsMarket.Relay.Archive;

/// <summary>The archive's tables, created and migrated in plain SQL when the relay starts.</summary>
public static class ArchiveSchema
{
    /// <summary>Each entry is applied once, in order, inside a transaction; never edit an applied one.</summary>
    static readonly string[] Migrations =
    [
        """
        CREATE TABLE slots (
            slot                 bigint PRIMARY KEY,
            proposer             text NOT NULL,
            parent_hash          text NOT NULL,
            number               bigint NOT NULL,
            closes_at_ms         bigint NOT NULL,
            closed_at_ms         bigint NOT NULL,
            winner_hash          text,
            winner_builder       text,
            winner_value         numeric(78,0),
            price                numeric(78,0) NOT NULL,
            bids_root            text NOT NULL,
            bid_count            integer NOT NULL,
            relay_signature      text NOT NULL,
            proposed_header_hash text,
            proposal_signature   text,
            proposal_source      text,
            proposed_at_ms       bigint,
            l1_tx_hash           text,
            l1_block             bigint,
            posted_at_ms         bigint
        );
        CREATE TABLE bids (
            slot           bigint NOT NULL,
            header_hash    text NOT NULL,
            builder        text NOT NULL,
            value          numeric(78,0) NOT NULL,
            parent_hash    text NOT NULL,
            number         bigint NOT NULL,
            gas_limit      bigint NOT NULL,
            gas_used       bigint NOT NULL,
            tx_count       integer NOT NULL,
            received_at_ms bigint NOT NULL,
            sequence       bigint NOT NULL,
            record         jsonb NOT NULL,
            PRIMARY KEY (slot, header_hash)
        );
        CREATE INDEX bids_by_builder ON bids (builder, slot);
        CREATE TABLE proposals (
            slot              bigint PRIMARY KEY,
            header_hash       text NOT NULL,
            signature         text NOT NULL,
            source            text NOT NULL,
            header            jsonb NOT NULL,
            builder_signature text NOT NULL,
            payload           bytea NOT NULL,
            received_at_ms    bigint NOT NULL
        );
        CREATE TABLE equivocations (
            slot             bigint NOT NULL,
            proposer         text NOT NULL,
            first_hash       text NOT NULL,
            first_signature  text NOT NULL,
            second_hash      text NOT NULL,
            second_signature text NOT NULL,
            received_at_ms   bigint NOT NULL,
            PRIMARY KEY (slot, first_hash, second_hash)
        );
        """,
    ];

    public static async Task MigrateAsync(NpgsqlDataSource db, ILogger log, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using (var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", conn))
            await create.ExecuteNonQueryAsync(ct);
        for (var v = 1; v <= Migrations.Length; v++)
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            // Several relays may start at once: the advisory lock lets one migrate while the others wait.
            await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(7123001)", conn, tx)) await lockCmd.ExecuteNonQueryAsync(ct);
            await using var check = new NpgsqlCommand("SELECT 1 FROM schema_version WHERE version = $1", conn, tx) { Parameters = { new() { Value = v } } };
            if (await check.ExecuteScalarAsync(ct) is null)
            {
                await using (var apply = new NpgsqlCommand(Migrations[v - 1], conn, tx)) await apply.ExecuteNonQueryAsync(ct);
                await using (var mark = new NpgsqlCommand("INSERT INTO schema_version (version) VALUES ($1)", conn, tx) { Parameters = { new() { Value = v } } })
                    await mark.ExecuteNonQueryAsync(ct);
                log.LogInformation("archive schema migrated to version {Version}", v);
            }
            await tx.CommitAsync(ct);
        }
    }
}
