using System.Collections.Concurrent;
using System.Net;
using StackExchange.Redis;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// Before the relay acknowledges a write (a bid's 202, a proposal's 200), waits until
/// <see cref="DurabilityOptions.WaitReplicas"/> replicas of the Redis master that took it have it (Redis <c>WAIT</c>), so
/// that losing that master (its replica promoted) loses nothing acknowledged. <c>WAIT</c> covers every write sent before it
/// on the same connection; StackExchange.Redis sends a server's commands in order on one connection, so a <c>WAIT</c>
/// issued after a write has completed covers it. Writes that complete while a <c>WAIT</c> is in flight share the next one
/// (group commit): a loaded relay sends one <c>WAIT</c> per replica round trip, not one per bid. Per master, so it is
/// right on a Redis Cluster too (each slot's keys have their own master).
/// </summary>
public sealed class ReplicaConfirmer(IConnectionMultiplexer redis, RelayOptions options)
{
    readonly ConcurrentDictionary<EndPoint, Batcher> _batchers = new();

    public bool Enabled => options.Durability.WaitReplicas > 0;

    /// <summary>
    /// True once the master holding <paramref name="key"/> has at least WaitReplicas replicas confirming every write made
    /// before this call; false when they did not within WaitTimeoutMs (the write is in Redis, but not yet safe from the
    /// loss of its master: the caller must not acknowledge it).
    /// </summary>
    /// <param name="fence">The caller wrote nothing itself (a resent bid, a repeated proposal): the record may have been
    /// written by another instance, on another connection, and <c>WAIT</c> only covers this connection's own writes. A
    /// write to a key of the same hash slot first (a counter) makes this connection's replication offset at least the
    /// record's, so the <c>WAIT</c> that follows covers the record whoever wrote it.</param>
    public async Task<bool> ConfirmAsync(RedisKey key, bool fence = false)
    {
        if (!Enabled) return true;
        var db = redis.GetDatabase();
        var endpoint = await db.IdentifyEndpointAsync(key)
                       ?? throw new RedisConnectionException(ConnectionFailureType.UnableToResolvePhysicalConnection, $"no Redis master known for {key}");
        if (fence) await db.StringIncrementAsync(FenceOf(key), flags: CommandFlags.DemandMaster);
        var batcher = _batchers.GetOrAdd(endpoint, e => new Batcher(redis.GetServer(e), options.Durability));
        return await batcher.ConfirmAsync() >= options.Durability.WaitReplicas;
    }

    /// <summary>A counter in the same hash slot as <paramref name="key"/> (its hash tag, or the whole key), written only as a fence.</summary>
    static RedisKey FenceOf(RedisKey key)
    {
        var k = key.ToString();
        var open = k.IndexOf('{');
        var close = open < 0 ? -1 : k.IndexOf('}', open + 1);
        return close > open + 1 ? $"{k[..(close + 1)]}:fence" : $"{{{k}}}:fence";
    }

    /// <summary>One loop per master: takes every caller waiting now, sends one WAIT, answers them all with its result.
    /// Callers that arrive while it is in flight (their writes may have been sent after it) go into the next one.</summary>
    sealed class Batcher
    {
        readonly System.Threading.Channels.Channel<TaskCompletionSource<long>> _waiting =
            System.Threading.Channels.Channel.CreateUnbounded<TaskCompletionSource<long>>(new() { SingleReader = true });

        public Batcher(IServer server, DurabilityOptions o) => _ = RunAsync(server, o);

        public Task<long> ConfirmAsync()
        {
            var waiter = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.Writer.TryWrite(waiter);
            return waiter.Task;
        }

        async Task RunAsync(IServer server, DurabilityOptions o)
        {
            var batch = new List<TaskCompletionSource<long>>();
            while (await _waiting.Reader.WaitToReadAsync())
            {
                batch.Clear();
                while (_waiting.Reader.TryRead(out var w)) batch.Add(w);
                try
                {
                    var replicas = (long)await server.ExecuteAsync("WAIT", o.WaitReplicas, o.WaitTimeoutMs);
                    foreach (var w in batch) w.TrySetResult(replicas);
                }
                catch (Exception e)
                {
                    foreach (var w in batch) w.TrySetException(e);
                }
            }
        }
    }
}
