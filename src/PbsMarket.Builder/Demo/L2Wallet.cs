using System.Security.Cryptography;
using Nethereum.Signer;
using PbsMarket.Core;

namespace PbsMarket.Builder.Demo;

/// <summary>One block's contents: the raw signed transactions, their RLP payload, gas and the tips they pay.</summary>
public sealed record DemoBlock(ulong Slot, IReadOnlyList<byte[]> RawTxs, byte[] Payload, ulong GasUsed, BigInteger Tips, IReadOnlyList<(int Account, BigInteger Nonce)> Used);

/// <summary>
/// A demo builder's L2 order flow: a few deterministic, funded demo L2 accounts (keys derived from the builder's name,
/// so every run uses the same addresses and no two builders share an account) sending each other plain transfers as
/// EIP-1559 transactions signed for the L2 chain id. Nonces are tracked per account and advance only when a block that
/// carried them won its auction (<see cref="Commit"/>); a losing block's transactions are simply re-sent later with the
/// same nonces. L2 execution is not simulated, so "funded" is by convention.
/// </summary>
public sealed class L2Wallet
{
    public const ulong TransferGas = 21_000;
    readonly EthECKey[] _keys;
    readonly string[] _addresses;
    readonly BigInteger[] _nonces;
    readonly Random _random;
    readonly object _gate = new();
    readonly Dictionary<ulong, DemoBlock> _bySlot = [];
    static readonly Transaction1559Signer Signer = new();

    public L2Wallet(string seedName, int accounts = 8, int? randomSeed = null)
    {
        _keys = [.. Enumerable.Range(0, accounts).Select(i => new EthECKey(DeriveKey(seedName, i), true))];
        _addresses = [.. _keys.Select(k => k.GetPublicAddress())];
        _nonces = new BigInteger[accounts];
        _random = new Random(randomSeed ?? StableHash(seedName));
    }

    public IReadOnlyList<string> Addresses => _addresses;
    public BigInteger NonceOf(int account) { lock (_gate) return _nonces[account]; }

    /// <summary>keccak256("pbs-demo-l2/" + name + "/" + index), a valid secp256k1 key (retried in the negligible other case).</summary>
    public static byte[] DeriveKey(string name, int index)
    {
        for (var salt = 0; ; salt++)
        {
            var k = Keccak.Hash(System.Text.Encoding.UTF8.GetBytes($"pbs-demo-l2/{name}/{index}/{salt}")).ToArray();
            if (k.Any(b => b != 0) && new BigInteger(k, isUnsigned: true, isBigEndian: true) < Secp256k1N) return k;
        }
    }

    static readonly BigInteger Secp256k1N = BigInteger.Parse("115792089237316195423570985008687907852837564279074904382605163141518161494337", System.Globalization.CultureInfo.InvariantCulture);

    static int StableHash(string s) => BitConverter.ToInt32(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s)), 0);

    /// <summary>The block this builder offers for <paramref name="slot"/> (built once per slot, the same for every relay).</summary>
    public DemoBlock BlockFor(ulong slot, BigInteger l2ChainId, int minTxs, int maxTxs)
    {
        lock (_gate)
        {
            if (_bySlot.TryGetValue(slot, out var existing)) return existing;
            foreach (var old in _bySlot.Keys.Where(s => s + 8 < slot).ToList()) _bySlot.Remove(old);
            var count = _random.Next(minTxs, maxTxs + 1);
            var raw = new List<byte[]>(count);
            var used = new List<(int, BigInteger)>(count);
            var next = (BigInteger[])_nonces.Clone();
            BigInteger tips = 0;
            for (var i = 0; i < count; i++)
            {
                var from = _random.Next(_keys.Length);
                var to = (from + 1 + _random.Next(_keys.Length - 1)) % _keys.Length;
                var tip = new BigInteger(_random.Next(1, 6)) * 1_000_000_000; // 1-5 gwei
                var maxFee = tip + 1_000_000_000;
                var value = new BigInteger(_random.Next(1, 1000)) * 1_000_000_000_000; // 0.000001-0.001 ether
                var tx = new Nethereum.Model.Transaction1559(l2ChainId, next[from], tip, maxFee, TransferGas, _addresses[to], value, "", []);
                var signed = Signer.SignTransaction(_keys[from], tx);
                raw.Add(Convert.FromHexString(signed.StartsWith("0x", StringComparison.Ordinal) ? signed[2..] : signed));
                used.Add((from, next[from]));
                next[from]++;
                tips += tip * TransferGas;
            }
            var block = new DemoBlock(slot, raw, PayloadCodec.Encode(raw), TransferGas * (ulong)count, tips, used);
            _bySlot[slot] = block;
            return block;
        }
    }

    /// <summary>The block of <paramref name="slot"/> won: its transactions are spent, later blocks start after them.</summary>
    public void Commit(ulong slot)
    {
        lock (_gate)
        {
            if (!_bySlot.Remove(slot, out var block)) return;
            foreach (var (account, nonce) in block.Used)
                if (nonce >= _nonces[account]) _nonces[account] = nonce + 1;
            // Blocks built for later slots on the old nonces are stale now: rebuild them.
            foreach (var s in _bySlot.Keys.Where(s => s > slot).ToList()) _bySlot.Remove(s);
        }
    }
}
