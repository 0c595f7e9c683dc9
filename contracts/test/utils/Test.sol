// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: cheatcode handle, assertions that revert with a readable message, console logging.
abstract contract Test {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    function assertTrue(bool c, string memory what) internal pure {
        if (!c) revert(string.concat("assertTrue failed: ", what));
    }

    function assertTrue(bool c) internal pure {
        assertTrue(c, "");
    }

    function assertFalse(bool c) internal pure {
        if (c) revert("assertFalse failed");
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        if (a != b) revert(string.concat("assertEq(uint) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(address a, address b) internal pure {
        if (a != b) revert(string.concat("assertEq(address) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        if (a != b) revert(string.concat("assertEq(bytes32) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bool a, bool b) internal pure {
        if (a != b) revert("assertEq(bool) failed");
    }

    function assertEq(address[] memory a, address[] memory b) internal pure {
        if (a.length != b.length) {
            revert(string.concat("assertEq(address[]) length: ", vm.toString(a.length), " != ", vm.toString(b.length)));
        }
        for (uint256 i = 0; i < a.length; ++i) {
            assertEq(a[i], b[i]);
        }
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (hi - lo == type(uint256).max) return x;
        return lo + (x % (hi - lo + 1));
    }

    function log(string memory s, uint256 v) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", s, v));
        ok;
    }

    function log(string memory s) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string)", s));
        ok;
    }

    function log(string memory s, bytes32 v) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,bytes32)", s, v));
        ok;
    }
}
