using Nethereum.Hex.HexConvertors.Extensions;
using PbsMarket.Core;

namespace PbsMarket.L1.Tests;

public sealed class ContractErrorsTests
{
    static string Word(BigInteger v) => v.ToByteArray(isUnsigned: true, isBigEndian: true).ToHex().PadLeft(64, '0');
    static string Selector(string sig) => Keccak.Hash(System.Text.Encoding.ASCII.GetBytes(sig)).ToString()[..10];

    [Fact]
    public void Decodes_custom_errors_of_the_abi_with_their_arguments()
    {
        Assert.Equal("SlotAlreadyPosted(12)", ContractErrors.Decode(Selector("SlotAlreadyPosted(uint64)") + Word(12)).ToString());
        var parent = Hash32.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        Assert.Equal($"UnknownParent({parent})", ContractErrors.Decode(Selector("UnknownParent(bytes32)") + parent.ToString()[2..]).ToString());
        var e = ContractErrors.Decode(Selector("NotScheduledProposer(uint64,address,address)") + Word(7) + Word(0xabcdef) + Word(1));
        Assert.Equal("NotScheduledProposer", e.Name);
        Assert.Equal(["7", "0x0000000000000000000000000000000000abcdef", "0x0000000000000000000000000000000000000001"], e.Args);
        Assert.Equal("BadBuilderSignature()", ContractErrors.Decode(Selector("BadBuilderSignature()")).ToString());
        Assert.Equal("Unknown", ContractErrors.Decode("0xdeadbeef").Name);
        Assert.Equal("Revert", ContractErrors.Decode("0x").Name);
        Assert.Contains("InsufficientEscrow", ContractErrors.KnownNames);
    }
}
