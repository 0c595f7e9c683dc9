using PbsMarket.Core;
using PbsMarket.Relay.Auctions;
using PbsMarket.Testing;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests;

/// <summary>The debt ledger on a real Redis: booked once per slot, released once per slot, exact to the wei.</summary>
public sealed class DebtLedgerTests(TestServers servers) : IAsyncLifetime
{
    static readonly Address X = Address.Parse("0x00000000000000000000000000000000000000aa");
    static readonly Address Y = Address.Parse("0x00000000000000000000000000000000000000bb");
    ConnectionMultiplexer _redis = null!;
    DebtLedger _ledger = null!;

    public async ValueTask InitializeAsync()
    {
        var redis = await servers.RedisAsync();
        _redis = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        _ledger = new DebtLedger(new RedisKeys("l" + Guid.NewGuid().ToString("N")[..10]), _redis);
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();

    [Fact]
    public async Task A_late_second_release_of_a_slot_frees_nothing_more_and_keeps_the_builders_other_debts()
    {
        Assert.True(await _ledger.BookAsync(10, X, 5));
        Assert.True(await _ledger.BookAsync(11, X, 7));
        Assert.Equal([X], await _ledger.ReleaseThroughAsync(10, 10UL * 10));
        // Released again (a late proposal, a second instance, a replayed L1 view): slot 10 is gone; slot 11 stays.
        Assert.Empty(await _ledger.ReleaseThroughAsync(10, 200));
        Assert.Empty(await _ledger.ReleaseThroughAsync(9, 9UL * 10));
        Assert.Equal(new BigInteger(7), (await _ledger.OwedAsync(X)).Owed);
        Assert.Equal(10UL, (await _ledger.OwedAsync(X)).FinalThrough);
        // The L1 block stays the first one at which slot 10 was seen final (balances read at it or later are fresh).
        Assert.Equal(100UL, (await _ledger.OwedAsync(X)).FinalBlock);
    }

    [Fact]
    public async Task A_slot_is_booked_once_however_many_readers_book_it_and_never_after_L1_decided_it()
    {
        var booked = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => _ledger.BookAsync(20, X, 3)));
        Assert.Single(booked, b => b);
        Assert.Equal(new BigInteger(3), (await _ledger.OwedAsync(X)).Owed);
        // A different winner for a booked slot (a forged or rehydrated-wrong result) does not replace the first.
        Assert.False(await _ledger.BookAsync(20, Y, 1_000));
        Assert.Equal(BigInteger.Zero, (await _ledger.OwedAsync(Y)).Owed);

        await _ledger.ReleaseThroughAsync(25, 25UL * 10);
        Assert.False(await _ledger.BookAsync(24, X, 9)); // final on L1: a late reader books nothing
        Assert.Equal(BigInteger.Zero, (await _ledger.OwedAsync(X)).Owed);
        Assert.True(await _ledger.BookAsync(26, X, 9));
        Assert.False(await _ledger.BookAsync(27, X, 0)); // no price, no debt
        Assert.Equal(new BigInteger(9), (await _ledger.OwedAsync(X)).Owed);
        // The final slot never goes back.
        await _ledger.ReleaseThroughAsync(3, 3UL * 10);
        Assert.Equal(25UL, (await _ledger.OwedAsync(X)).FinalThrough);
    }

    [Fact]
    public async Task Amounts_are_exact_to_the_wei_up_to_2_pow_256_and_a_release_sweeps_more_slots_than_one_batch()
    {
        var max = (BigInteger.One << 256) - 1;
        Assert.True(await _ledger.BookAsync(1, X, max));
        Assert.True(await _ledger.BookAsync(2, X, max));
        Assert.Equal(2 * max, (await _ledger.OwedAsync(X)).Owed);
        for (ulong s = 100; s < 700; s++) await _ledger.BookAsync(s, s % 2 == 0 ? X : Y, s);
        Assert.True(await _ledger.BookAsync(ulong.MaxValue, Y, 1)); // the largest slot number sorts last
        var released = await _ledger.ReleaseThroughAsync(1, 1UL * 10);
        Assert.Equal([X], released);
        Assert.Equal(max + Enumerable.Range(100, 600).Where(s => s % 2 == 0).Sum(s => (long)s), (await _ledger.OwedAsync(X)).Owed);
        released = await _ledger.ReleaseThroughAsync(699, 699UL * 10);
        Assert.Equal(601, released.Count);
        Assert.Equal(BigInteger.Zero, (await _ledger.OwedAsync(X)).Owed);
        Assert.Equal(BigInteger.One, (await _ledger.OwedAsync(Y)).Owed);
        Assert.Equal([ulong.MaxValue], (await _ledger.OpenDebtsAsync()).Keys);
    }
}
