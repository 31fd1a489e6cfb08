// docs/writing-a-driver/hello.ts
import {
  MODULE_LICENSE, MODULE_DESCRIPTION, MODULE_AUTHOR, module_init, module_exit,
  printk, KERN_INFO, dev_info, devm_kzalloc, GFP_KERNEL, ENOMEM, IS_ERR, PTR_ERR,
  platform_driver_register, platform_driver_unregister,
  platform_device_register_simple, platform_device_unregister, PLATFORM_DEVID_NONE,
  type platform_device, type platform_driver,
} from "kemu/kernel";

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hello: a first platform driver");
MODULE_AUTHOR("A. Developer <dev@example.org>");

function hello_probe(pdev: platform_device): number {
  // devres: freed by the driver core when the device is unbound, no kfree() in remove.
  const state = devm_kzalloc(pdev.dev, 64, GFP_KERNEL);
  if (!state) return -ENOMEM;
  dev_info(pdev.dev, "probed, %d bytes of state\n", state.size);
  return 0;
}

function hello_remove(pdev: platform_device): number {
  dev_info(pdev.dev, "removed\n");
  return 0;
}

const hello_driver: platform_driver = {
  driver: { name: "hello" },
  probe: hello_probe,
  remove: hello_remove,
};

let hello_pdev: platform_device | null = null;

module_init(() => {
  printk(KERN_INFO + "hello: init\n");
  const rc = platform_driver_register(hello_driver);
  if (rc) return rc;
  // Stands in for firmware describing the device: registering it binds it to hello_driver.
  const pdev = platform_device_register_simple("hello", PLATFORM_DEVID_NONE, null, 0);
  if (IS_ERR(pdev)) {
    platform_driver_unregister(hello_driver);
    return PTR_ERR(pdev);
  }
  hello_pdev = pdev;
  return 0;
});

module_exit(() => {
  platform_device_unregister(hello_pdev);
  platform_driver_unregister(hello_driver);
  printk(KERN_INFO + "hello: exit\n");
});
