using System.Threading.Channels;
using StackExchange.Redis;
using PbsMarket.Relay.Auctions;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// Slot events (opened, closed, proposed, posted, missed) fanned out to this instance's server-sent
/// event clients. Events travel between instances over Redis pub/sub, so a client connected to any
/// instance sees every slot. Events about open auctions never carry anything about their bids.
/// </summary>
public sealed class EventHub : IHostedService
{
    readonly IConnectionMultiplexer _redis;
    readonly RedisKeys _keys;
    readonly ILogger<EventHub> _log;
    readonly List<Channel<string>> _clients = [];

    public EventHub(IConnectionMultiplexer redis, RedisKeys keys, ILogger<EventHub> log)
    {
        _redis = redis;
        _keys = keys;
        _log = log;
    }

    public int ClientCount { get { lock (_clients) return _clients.Count; } }

    /// <summary>Publishes an event (a JSON object with a "type") to every instance.</summary>
    public Task PublishAsync(string json) => _redis.GetSubscriber().PublishAsync(_keys.Events, json);

    public async Task StartAsync(CancellationToken ct)
    {
        var queue = await _redis.GetSubscriber().SubscribeAsync(_keys.Events);
        queue.OnMessage(m => Broadcast((string)m.Message!));
    }

    public Task StopAsync(CancellationToken ct)
    {
        lock (_clients)
        {
            foreach (var c in _clients) c.Writer.TryComplete();
            _clients.Clear();
        }
        return Task.CompletedTask;
    }

    void Broadcast(string json)
    {
        lock (_clients)
        {
            foreach (var c in _clients)
            {
                // A client that cannot keep up loses its connection rather than the relay's memory.
                if (!c.Writer.TryWrite(json)) c.Writer.TryComplete(new IOException("client too slow"));
            }
        }
    }

    public Subscription Subscribe()
    {
        var channel = Channel.CreateBounded<string>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropWrite });
        lock (_clients) _clients.Add(channel);
        return new Subscription(this, channel);
    }

    public sealed class Subscription(EventHub hub, Channel<string> channel) : IDisposable
    {
        public ChannelReader<string> Reader => channel.Reader;

        public void Dispose()
        {
            lock (hub._clients) hub._clients.Remove(channel);
            channel.Writer.TryComplete();
        }
    }
}
