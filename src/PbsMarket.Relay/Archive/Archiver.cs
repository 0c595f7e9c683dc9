using System.Globalization;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Archive;

/// <summary>
/// Moves archive records from the Redis stream into PostgreSQL. Entries are acknowledged only after
/// their transaction commits; inserts are idempotent, so an entry written twice (a retry, or one
/// claimed from an instance that died mid-batch) changes nothing. While PostgreSQL is down the
/// entries wait in the stream and the relay keeps accepting bids.
/// </summary>
public sealed class Archiver(
    IConnectionMultiplexer redis, RedisKeys keys, NpgsqlDataSource db, RelayMetrics metrics, InstanceInfo instance, RelayOptions o, TimeProvider time, RedisRouting routing, ILogger<Archiver> log)
    : BackgroundService
{
    public volatile string? Problem = "starting";

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(o.ArchiveRetryMinMs);
        var migrated = false;
        var lastClaim = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!migrated)
                {
                    await ArchiveSchema.MigrateAsync(db, log, ct);
                    migrated = true;
                }
                await EnsureGroupAsync();
                var idle = true;
                // Own pending entries first (left by a failed write), then entries idle at dead instances, then new ones.
                var entries = await Db.StreamReadGroupAsync(keys.ArchiveStream, RedisKeys.ArchiveGroup, instance.Id, "0", o.ArchiveBatch);
                if (entries.Length == 0 && time.GetUtcNow() - lastClaim > TimeSpan.FromMilliseconds(o.ArchiveClaimEveryMs))
                {
                    lastClaim = time.GetUtcNow();
                    var claimed = await Db.StreamAutoClaimAsync(keys.ArchiveStream, RedisKeys.ArchiveGroup, instance.Id, o.ArchiveClaimIdleMs, "0-0", o.ArchiveBatch);
                    entries = claimed.ClaimedEntries;
                    if (entries.Length > 0) log.LogWarning("claimed {Count} archive entries left by another instance", entries.Length);
                }
                if (entries.Length == 0) entries = await Db.StreamReadGroupAsync(keys.ArchiveStream, RedisKeys.ArchiveGroup, instance.Id, ">", o.ArchiveBatch);
                if (entries.Length > 0)
                {
                    idle = false;
                    await WriteAsync(entries, ct);
                    var ids = entries.Select(e => e.Id).ToArray();
                    await Db.StreamAcknowledgeAsync(keys.ArchiveStream, RedisKeys.ArchiveGroup, ids);
                    await Db.StreamDeleteAsync(keys.ArchiveStream, ids);
                    metrics.ArchiveRecords.Add(entries.Length);
                }
                if (Problem is not null) log.LogInformation("archive writing to PostgreSQL again");
                Problem = null;
                delay = TimeSpan.FromMilliseconds(o.ArchiveRetryMinMs);
                if (idle) await Task.Delay(delay, time, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Any failure (PostgreSQL, Redis, a record it cannot write) pauses the archive with back-off; none may
                // escape and stop the relay. Stream entries are acknowledged only once written, so nothing is skipped.
                routing.Observe(e);
                if (Problem is null || delay.TotalSeconds >= 4) log.LogWarning("archive paused, retrying in {Delay}: {Type}: {Error}", delay, e.GetType().Name, e.Message);
                Problem = e.Message;
                metrics.ArchiveErrors.Add(1);
                await Task.Delay(delay, time, ct);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, o.ArchiveRetryMaxMs));
            }
        }
    }

    IDatabase Db => redis.GetDatabase();

    async Task EnsureGroupAsync()
    {
        try
        {
            await Db.StreamCreateConsumerGroupAsync(keys.ArchiveStream, RedisKeys.ArchiveGroup, "0-0", createStream: true);
        }
        catch (RedisServerException e) when (e.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
    }

    async Task WriteAsync(StreamEntry[] entries, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var bids = new List<ArchivedBid>();
        var bidSlots = new List<ulong>();
        foreach (var e in entries)
        {
            var type = (string?)e["type"];
            var data = (string)e["data"]!;
            switch (type)
            {
                case "result":
                {
                    var r = JsonSerializer.Deserialize<ResultRecord>(data, WireJson.Options)!;
                    await InsertSlotAsync(conn, tx, r.Slot, ct);
                    bids.AddRange(r.Bids);
                    bidSlots.AddRange(r.Bids.Select(_ => r.Slot.Slot));
                    break;
                }
                case "proposal":
                    await InsertProposalAsync(conn, tx, JsonSerializer.Deserialize<ProposalRecord>(data, WireJson.Options)!, ct);
                    break;
                case "equivocation":
                    await InsertEquivocationAsync(conn, tx, JsonSerializer.Deserialize<EquivocationRecord>(data, WireJson.Options)!, ct);
                    break;
                case "posted":
                {
                    var p = JsonSerializer.Deserialize<PostedRecord>(data, WireJson.Options)!;
                    await ExecAsync(conn, tx, "UPDATE slots SET l1_tx_hash = $2, l1_block = $3, posted_at_ms = $4 WHERE slot = $1",
                        ct, (long)p.Slot, p.L1TxHash, (long)p.BlockNumber, (long)p.PostedAtMs);
                    break;
                }
                default:
                    log.LogError("unknown archive record type {Type}; skipped", type);
                    break;
            }
        }
        if (bids.Count > 0) await CopyBidsAsync(conn, tx, bids, bidSlots, ct);
        await tx.CommitAsync(ct);
    }

    static async Task InsertSlotAsync(NpgsqlConnection conn, NpgsqlTransaction tx, SlotView s, CancellationToken ct) =>
        await ExecAsync(conn, tx, """
            INSERT INTO slots (slot, proposer, parent_hash, number, closes_at_ms, closed_at_ms, winner_hash, winner_builder,
                               winner_value, price, bids_root, bid_count, relay_signature)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10::numeric, $11, $12, $13)
            ON CONFLICT (slot) DO NOTHING
            """, ct, (long)s.Slot, s.Proposer.ToString(), s.ParentHash!.Value.ToString(), (long)s.Number!.Value, (long)s.ClosesAtMs!.Value,
            (long)s.ClosedAtMs!.Value, (object?)s.Winner?.HeaderHash.ToString() ?? DBNull.Value, (object?)s.Winner?.Builder.ToString() ?? DBNull.Value,
            (object?)s.Winner?.Value.ToString(CultureInfo.InvariantCulture) ?? DBNull.Value, s.Price!.Value.ToString(CultureInfo.InvariantCulture),
            s.BidsRoot!.Value.ToString(), (int)s.BidCount!.Value, s.RelaySignature!);

    static async Task InsertProposalAsync(NpgsqlConnection conn, NpgsqlTransaction tx, ProposalRecord p, CancellationToken ct)
    {
        await ExecAsync(conn, tx, """
            INSERT INTO proposals (slot, header_hash, signature, source, header, builder_signature, payload, received_at_ms)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT (slot) DO NOTHING
            """, ct, (long)p.Slot, p.HeaderHash.ToString(), p.Signature, p.Source, p.HeaderJson, p.BuilderSignature,
            Convert.FromHexString(p.PayloadHex.AsSpan(2)), (long)p.ReceivedAtMs);
        await ExecAsync(conn, tx, """
            UPDATE slots SET proposed_header_hash = $2, proposal_signature = $3, proposal_source = $4, proposed_at_ms = $5
            WHERE slot = $1 AND proposed_header_hash IS NULL
            """, ct, (long)p.Slot, p.HeaderHash.ToString(), p.Signature, p.Source, (long)p.ReceivedAtMs);
    }

    static Task InsertEquivocationAsync(NpgsqlConnection conn, NpgsqlTransaction tx, EquivocationRecord e, CancellationToken ct) =>
        ExecAsync(conn, tx, """
            INSERT INTO equivocations (slot, proposer, first_hash, first_signature, second_hash, second_signature, received_at_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
            """, ct, (long)e.Slot, e.Proposer.ToString(), e.FirstHash.ToString(), e.FirstSignature, e.SecondHash.ToString(), e.SecondSignature, (long)e.ReceivedAtMs);

    /// <summary>Bids go in with binary COPY into a temp table, then one idempotent INSERT.</summary>
    static async Task CopyBidsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, List<ArchivedBid> bids, List<ulong> slots, CancellationToken ct)
    {
        await ExecAsync(conn, tx, "CREATE TEMP TABLE bids_in (LIKE bids INCLUDING DEFAULTS) ON COMMIT DROP", ct);
        await using (var w = await conn.BeginBinaryImportAsync(
            "COPY bids_in (slot, header_hash, builder, value, parent_hash, number, gas_limit, gas_used, tx_count, received_at_ms, sequence, record) FROM STDIN (FORMAT BINARY)", ct))
        {
            for (var i = 0; i < bids.Count; i++)
            {
                var b = bids[i];
                var stored = StoredBid.FromRecord($"{b.ReceivedAtMs}|{b.Sequence}|{b.Record}");
                var h = stored.Header;
                await w.StartRowAsync(ct);
                await w.WriteAsync((long)slots[i], NpgsqlDbType.Bigint, ct);
                await w.WriteAsync(b.HeaderHash.ToString(), NpgsqlDbType.Text, ct);
                await w.WriteAsync(h.Builder.ToString(), NpgsqlDbType.Text, ct);
                await w.WriteAsync((decimal)0, NpgsqlDbType.Numeric, ct); // replaced below: numeric(78,0) exceeds decimal
                await w.WriteAsync(h.ParentHash.ToString(), NpgsqlDbType.Text, ct);
                await w.WriteAsync((long)h.Number, NpgsqlDbType.Bigint, ct);
                await w.WriteAsync((long)h.GasLimit, NpgsqlDbType.Bigint, ct);
                await w.WriteAsync((long)h.GasUsed, NpgsqlDbType.Bigint, ct);
                await w.WriteAsync(stored.TxCount, NpgsqlDbType.Integer, ct);
                await w.WriteAsync((long)b.ReceivedAtMs, NpgsqlDbType.Bigint, ct);
                await w.WriteAsync(b.Sequence, NpgsqlDbType.Bigint, ct);
                await w.WriteAsync(b.Record, NpgsqlDbType.Jsonb, ct);
            }
            await w.CompleteAsync(ct);
        }
        // uint256 values do not fit .NET decimal: take them from the record's decimal string.
        await ExecAsync(conn, tx, """
            INSERT INTO bids SELECT slot, header_hash, builder, (record->'header'->>'value')::numeric, parent_hash, number,
                   gas_limit, gas_used, tx_count, received_at_ms, sequence, record
            FROM bids_in ON CONFLICT (slot, header_hash) DO NOTHING
            """, ct);
    }

    static async Task ExecAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params object?[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a ?? DBNull.Value });
        await cmd.ExecuteNonQueryAsync(ct);
    }
}

/// <summary>This instance's name (in logs and archive consumer claims).</summary>
public sealed record InstanceInfo(string Id);
