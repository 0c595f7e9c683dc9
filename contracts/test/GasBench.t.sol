// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {PostedHeader} from "../src/PbsTypes.sol";
import {Inbox} from "../src/Inbox.sol";

/// @notice Gas per header of Inbox.postHeaders (protocol v2, second price) for batches of 1, 8 and 32 headers, with
/// the calldata cost computed apart (it is charged by the transaction, not metered by gasleft()). Every item is a
/// real auction: 4 builders take turns winning (4 distinct builder keys), the 4 genesis proposers are scheduled, the
/// price is the value of a real runner-up of another builder (its signature and a 3-sibling Merkle proof checked),
/// the relay's AuctionResult and the proposer's Proposal v2 are checked, and every item settles a non-zero price.
///
/// Two states (each cell is its own test, a fresh transaction after setUp, so every slot is cold as on chain):
///  * GasBenchTest: a market in operation. setUp posts an earlier chain of 32 auctions (every proposer and builder
///    has settled before) and every proposer claims its earnings; the measured batch extends that head. Lines:
///    `batch N, payload P B: ...`.
///  * GasBenchColdTest: the first batch after deployment (head at genesis, every proposer's earnings slot never
///    written). Lines: `cold: batch N, payload P B: ...`.
/// Reproduce: `forge test --match-contract GasBench -vv` from contracts/.
contract GasBenchTest is Fixture {
    uint256 internal constant PAYLOAD_BYTES = 1024;
    uint64 internal constant FIRST_SLOT = 1000;

    struct Result {
        uint256 exec;
        uint256 calldataGas;
        uint256 floorGas;
        uint256 calldataBytes;
    }

    bytes32 internal parent0;
    uint64 internal number0;

    function warm() internal pure virtual returns (bool) {
        return true;
    }

    function tagPrefix() internal pure virtual returns (string memory) {
        return "";
    }

    function setUp() public virtual override {
        super.setUp();
        if (!warm()) return;
        PostedHeader[] memory a = _auctions(FIRST_SLOT - 100, 32, hex"c0", bytes32(0), 0);
        inbox.postHeaders(a);
        (parent0, number0) = inbox.head();
        for (uint256 i = 0; i < NUM_GENESIS; ++i) {
            address p = genesisProposers[i];
            require(escrow.earningsOf(p) != 0, "warm-up did not schedule every proposer");
            vm.prank(p);
            escrow.claimEarnings();
        }
    }

    function _payload(uint256 len) internal pure returns (bytes memory p) {
        if (len <= 1) return hex"c0";
        p = new bytes(len);
        for (uint256 i = 0; i < len; i += 32) {
            bytes32 w = keccak256(abi.encode(i));
            for (uint256 j = 0; j < 32 && i + j < len; ++j) p[i + j] = w[j];
        }
    }

    /// @dev a chain of auctions on consecutive slots: 8 bids each (winner, runner-up at a varying second price,
    /// 6 more), so each runner-up proof has 3 siblings.
    function _auctions(uint64 firstSlot, uint256 n, bytes memory payload, bytes32 parent, uint64 number)
        internal
        view
        returns (PostedHeader[] memory a)
    {
        a = new PostedHeader[](n);
        for (uint256 i = 0; i < n; ++i) {
            Spec memory s = spec(firstSlot + uint64(i), number + uint64(i) + 1, parent, payload);
            s.value = 1 ether + i * 0.01 ether;
            s.runnerValue = 0.5 ether + i * 0.01 ether;
            s.extraBids = 6;
            a[i] = make(s);
            parent = hashOf(a[i]);
        }
    }

    function _measure(uint256 n, uint256 payloadLen) internal returns (Result memory r) {
        PostedHeader[] memory a = _auctions(FIRST_SLOT, n, _payload(payloadLen), parent0, number0);
        bytes memory cd = abi.encodeCall(Inbox.postHeaders, (a));
        uint256 zeros;
        for (uint256 i = 0; i < cd.length; ++i) if (cd[i] == 0) ++zeros;
        uint256 nonZeros = cd.length - zeros;
        r.calldataGas = 4 * zeros + 16 * nonZeros; // EIP-2028
        r.floorGas = 21_000 + 10 * (zeros + 4 * nonZeros); // EIP-7623 floor (Prague)
        r.calldataBytes = cd.length;
        uint64 count0 = inbox.headerCount();
        address target = address(inbox);
        uint256 g0 = gasleft();
        (bool ok,) = target.call(cd);
        r.exec = g0 - gasleft();
        require(ok, "postHeaders failed");
        assertEq(inbox.headerCount(), count0 + n);
        if (n == 32) {
            // the benchmark really spreads over >= 4 proposers and 4 builders
            uint256 proposers;
            for (uint256 i = 0; i < NUM_GENESIS; ++i) if (escrow.earningsOf(genesisProposers[i]) != 0) ++proposers;
            assertEq(proposers, 4);
            for (uint256 i = 0; i < NUM_BUILDERS; ++i) assertTrue(escrow.balanceOf(builders[i], relay) < DEPOSIT);
        }
    }

    function _report(uint256 n, uint256 payloadLen) internal {
        Result memory r = _measure(n, payloadLen);
        string memory tag =
            string.concat(tagPrefix(), "batch ", vm.toString(n), ", payload ", vm.toString(payloadLen), " B: ");
        log(string.concat(tag, "exec gas/header"), r.exec / n);
        log(string.concat(tag, "calldata gas/header (EIP-2028)"), r.calldataGas / n);
        log(string.concat(tag, "calldata bytes/header"), r.calldataBytes / n);
        // tx gas/header = (21000 + exec + calldata) / n
        log(string.concat(tag, "tx gas/header"), (21_000 + r.exec + r.calldataGas) / n);
        log(string.concat(tag, "EIP-7623 floor/header"), r.floorGas / n);
    }

    function test_gasPerHeader_batch1_empty() public {
        _report(1, 1);
    }

    function test_gasPerHeader_batch1_payload() public {
        _report(1, PAYLOAD_BYTES);
    }

    function test_gasPerHeader_batch8_empty() public {
        _report(8, 1);
    }

    function test_gasPerHeader_batch8_payload() public {
        _report(8, PAYLOAD_BYTES);
    }

    function test_gasPerHeader_batch32_empty() public {
        _report(32, 1);
    }

    function test_gasPerHeader_batch32_payload() public {
        _report(32, PAYLOAD_BYTES);
    }
}

contract GasBenchColdTest is GasBenchTest {
    function warm() internal pure override returns (bool) {
        return false;
    }

    function tagPrefix() internal pure override returns (string memory) {
        return "cold: ";
    }
}
