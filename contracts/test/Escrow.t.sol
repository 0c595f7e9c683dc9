// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IPbsErrors, PostedHeader} from "../src/PbsTypes.sol";
import {BuilderEscrow} from "../src/BuilderEscrow.sol";

contract Reenterer {
    BuilderEscrow internal escrow;
    bool internal armed;

    constructor(BuilderEscrow e) {
        escrow = e;
    }

    function go() external payable {
        escrow.deposit{value: msg.value}();
        escrow.requestWithdrawal(msg.value);
    }

    function withdraw() external {
        armed = true;
        escrow.withdraw();
    }

    receive() external payable {
        if (armed) {
            armed = false;
            escrow.withdraw(); // reverts (reentrancy guard / nothing pending) -> outer transfer fails
        }
    }
}

contract EscrowTest is Fixture {
    function test_depositAndDepositFor() public {
        address b2 = vm.addr(0xB2);
        vm.deal(address(this), 5 ether);
        escrow.depositFor{value: 2 ether}(b2);
        assertEq(escrow.balanceOf(b2), 2 ether);
        vm.expectRevert(IPbsErrors.ZeroAmount.selector);
        escrow.depositFor{value: 0}(b2);
        vm.expectRevert(IPbsErrors.ZeroAddress.selector);
        escrow.depositFor{value: 1}(address(0));
        assertEq(address(escrow).balance, 102 ether);
    }

    function test_withdrawalDelay() public {
        vm.prank(builder);
        vm.expectRevert(IPbsErrors.NoPendingWithdrawal.selector);
        escrow.withdraw();

        vm.prank(builder);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.AmountExceedsBalance.selector, 101 ether, 100 ether));
        escrow.requestWithdrawal(101 ether);

        vm.prank(builder);
        escrow.requestWithdrawal(40 ether);
        assertEq(escrow.balanceOf(builder), 60 ether);
        assertEq(escrow.pendingOf(builder), 40 ether);
        uint64 readyAt = uint64(block.timestamp) + WITHDRAWAL_DELAY;
        assertEq(escrow.withdrawalReadyAt(builder), readyAt);

        vm.warp(readyAt - 1);
        vm.prank(builder);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WithdrawalNotReady.selector, readyAt));
        escrow.withdraw();

        // a second request restarts the delay for the whole pending amount
        vm.prank(builder);
        escrow.requestWithdrawal(10 ether);
        uint64 readyAt2 = uint64(block.timestamp) + WITHDRAWAL_DELAY;
        vm.warp(readyAt);
        vm.prank(builder);
        vm.expectRevert(abi.encodeWithSelector(IPbsErrors.WithdrawalNotReady.selector, readyAt2));
        escrow.withdraw();

        vm.warp(readyAt2);
        uint256 before = builder.balance;
        vm.prank(builder);
        escrow.withdraw();
        assertEq(builder.balance, before + 50 ether);
        assertEq(escrow.pendingOf(builder), 0);
        assertEq(escrow.balanceOf(builder), 50 ether);
    }

    function test_wonAuctionSettlesFromPendingWithdrawal() public {
        // builder wins (bid covered by its available balance), then tries to run with the money
        vm.prank(builder);
        escrow.requestWithdrawal(100 ether);
        assertEq(escrow.balanceOf(builder), 0);
        bytes memory payload = hex"c0";
        PostedHeader memory p = signed(header(100, 1, bytes32(0), payload, 30 ether), payload, 30 ether, 0);
        inbox.postHeaders(one(p));
        assertEq(escrow.pendingOf(builder), 70 ether);
        assertEq(escrow.earningsOf(p.header.proposer), 30 ether);
        vm.warp(block.timestamp + WITHDRAWAL_DELAY);
        uint256 before = builder.balance;
        vm.prank(builder);
        escrow.withdraw();
        assertEq(builder.balance, before + 70 ether);
        assertEq(address(escrow).balance, 30 ether);
    }

    function test_settleTakesAvailableFirst() public {
        vm.prank(builder);
        escrow.requestWithdrawal(90 ether);
        bytes memory payload = hex"c0";
        PostedHeader memory p = signed(header(100, 1, bytes32(0), payload, 15 ether), payload, 15 ether, 0);
        inbox.postHeaders(one(p));
        assertEq(escrow.balanceOf(builder), 0);
        assertEq(escrow.pendingOf(builder), 85 ether);
    }

    function test_revert_settleNotInbox() public {
        vm.expectRevert(IPbsErrors.NotInbox.selector);
        escrow.settle(builder, address(this), 1);
    }

    function test_setInboxOnceByDeployer() public {
        vm.prank(builder);
        vm.expectRevert(IPbsErrors.NotDeployer.selector);
        escrow.setInbox(address(1));
        vm.expectRevert(IPbsErrors.InboxAlreadySet.selector);
        escrow.setInbox(address(1));
    }

    function test_claimEarnings() public {
        PostedHeader memory p = item(100, 1, bytes32(0));
        inbox.postHeaders(one(p));
        address proposer = p.header.proposer;
        address to = address(0xCAFE);
        vm.prank(proposer);
        escrow.claimEarningsTo(payable(to));
        assertEq(to.balance, 0.5 ether);
        vm.prank(proposer);
        vm.expectRevert(IPbsErrors.NothingToClaim.selector);
        escrow.claimEarnings();
    }

    function test_reentrantWithdrawFails() public {
        Reenterer r = new Reenterer(escrow);
        vm.deal(address(this), 1 ether);
        r.go{value: 1 ether}();
        vm.warp(block.timestamp + WITHDRAWAL_DELAY);
        vm.expectRevert(IPbsErrors.TransferFailed.selector);
        r.withdraw();
        assertEq(escrow.pendingOf(address(r)), 1 ether);
        assertEq(address(escrow).balance, 101 ether);
    }

    /// @notice Conservation: escrow ether == available + pending + unclaimed earnings, whatever the amounts.
    function testFuzz_settlementConservesFunds(uint256 dep, uint256 req, uint256 price) public {
        dep = bound(dep, 1, 1e27);
        address b = vm.addr(0xB77);
        keyOf[b] = 0xB77;
        vm.deal(b, dep);
        vm.startPrank(b);
        escrow.deposit{value: dep}();
        req = bound(req, 0, dep);
        if (req != 0) escrow.requestWithdrawal(req);
        vm.stopPrank();
        price = bound(price, 0, dep);

        bytes memory payload = hex"c0";
        PostedHeader memory p;
        {
            p.header = header(100, 1, bytes32(0), payload, price);
            p.header.builder = b;
            p = signed(p.header, payload, price, 0);
        }
        inbox.postHeaders(one(p));
        address prop = p.header.proposer;
        assertEq(escrow.balanceOf(b) + escrow.pendingOf(b), dep - price);
        uint256 avail = dep - req;
        assertEq(escrow.balanceOf(b), price <= avail ? avail - price : 0);
        assertEq(
            address(escrow).balance,
            escrow.balanceOf(b) + escrow.pendingOf(b) + escrow.balanceOf(builder) + escrow.earningsOf(prop)
        );
    }
}
