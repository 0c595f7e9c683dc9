using PbsMarket.Core;

namespace PbsMarket.L2.Tests;

/// <summary>The mempool's limits against a user who wants to fill it for free.</summary>
public sealed class MempoolTests
{
    static readonly string[] Keys = PbsMarket.LocalServers.AnvilNode.DevKeys;
    static readonly BigInteger Rich = BigInteger.Pow(10, 22);

    static Func<Address, Task<(ulong, BigInteger)>> Accounts(BigInteger balance) => _ => Task.FromResult((0UL, balance));

    [Fact]
    public async Task A_free_or_unfunded_transaction_is_refused_and_a_sender_pays_for_all_it_has_waiting()
    {
        var pool = new Mempool(TimeProvider.System);
        var to = EngineTests.AddressOf(Keys[2]);
        // No tip: it would cost nothing, so anyone could fill the pool with it.
        var free = await Assert.ThrowsAsync<MempoolRefusal>(() => pool.AddAsync(EngineTests.Transfer(Keys[1], 0, to, 1, tip: 0), 901, Accounts(Rich)));
        Assert.Contains("underpriced", free.Message, StringComparison.Ordinal);
        // Each transaction alone is affordable, the two together are not.
        var cost = 21_000 * 2_000_000_000L + 1;
        await pool.AddAsync(EngineTests.Transfer(Keys[1], 0, to, 1), 901, Accounts(cost + 10));
        var second = await Assert.ThrowsAsync<MempoolRefusal>(() => pool.AddAsync(EngineTests.Transfer(Keys[1], 1, to, 1), 901, Accounts(cost + 10)));
        Assert.Contains("waiting transactions", second.Message, StringComparison.Ordinal);
        Assert.Equal(1, pool.Count);
    }

    [Fact]
    public async Task A_full_pool_takes_a_better_tip_by_evicting_the_worst_and_refuses_a_worse_one()
    {
        var pool = new Mempool(TimeProvider.System) { MaxTxs = 3 };
        var to = EngineTests.AddressOf(Keys[9]);
        for (var i = 0; i < 3; i++) await pool.AddAsync(EngineTests.Transfer(Keys[i], 0, to, 1, tip: 1_000_000_000 * (i + 1)), 901, Accounts(Rich));
        var worse = await Assert.ThrowsAsync<MempoolRefusal>(() => pool.AddAsync(EngineTests.Transfer(Keys[5], 0, to, 1, tip: 1_000_000_000), 901, Accounts(Rich)));
        Assert.Contains("txpool is full", worse.Message, StringComparison.Ordinal);
        var better = await pool.AddAsync(EngineTests.Transfer(Keys[6], 0, to, 1, tip: 9_000_000_000), 901, Accounts(Rich));
        Assert.Equal(3, pool.Count);
        var left = pool.Executable(_ => 0, 10);
        Assert.Contains(left, t => t.Hash == better.Hash);
        Assert.DoesNotContain(left, t => t.Tip == 1_000_000_000); // the worst tip made room
    }

    [Fact]
    public async Task A_transaction_without_its_intrinsic_gas_is_refused()
    {
        var pool = new Mempool(TimeProvider.System);
        // A creation needs 53,000 and more: 21,000 gas is not enough.
        var tx = new Nethereum.Model.Transaction1559(901, 0, 1_000_000_000, 2_000_000_000, 21_000, null!, 0, "0x600a600c600039600a6000f3", null);
        new Nethereum.Signer.Transaction1559Signer().SignTransaction(new Nethereum.Signer.EthECKey(Keys[1]), tx);
        var e = await Assert.ThrowsAsync<MempoolRefusal>(() => pool.AddAsync(tx.GetRLPEncoded(), 901, Accounts(Rich)));
        Assert.Contains("intrinsic gas too low", e.Message, StringComparison.Ordinal);
    }
}
